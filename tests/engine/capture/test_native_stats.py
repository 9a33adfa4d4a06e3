"""The one-pass C statistics kernel: the same numbers as torch's reductions, and a clean
fallback when it cannot be built."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from inspector.engine import native
from inspector.engine.capture import stats as stats_module
from inspector.engine.capture.stats import compute_stats
from inspector.engine.capture.stats_sample import SAMPLE_SIZE
from inspector.engine.records import Stats

ROOT = Path(__file__).resolve().parents[3]
needs_kernel = pytest.mark.skipif(native.kernel() is None, reason="no C compiler here")


def _torch_way(t: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> Stats | None:
    with monkeypatch.context() as m:
        m.setattr(native, "kernel", lambda: None)
        return compute_stats(t)


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


CASES: dict[str, Callable[[], torch.Tensor]] = {
    "normal 1M float32": lambda: torch.randn(1 << 20, generator=_g()),
    "relu map": lambda: torch.randn(4, 64, 56, 56, generator=_g()).relu_(),
    "odd length": lambda: torch.randn(1000003, generator=_g()) * 3 + 7,
    "float64": lambda: torch.randn(100_001, dtype=torch.float64, generator=_g()),
    "negative zeros": lambda: torch.randn(5000, generator=_g()).clamp(max=0) * 0,
    "one value": lambda: torch.tensor([2.5]),
    "constant": lambda: torch.full((3000,), -1.25),
    "huge values": lambda: torch.randn(4096, generator=_g()) * 1e20,
    "tiny spread": lambda: 1e4 + torch.randn(10_000, generator=_g()) * 1e-3,
    "integers": lambda: torch.arange(-500, 500),
    "ragged blocks": lambda: torch.randn(3 * 1024 + 17, generator=_g()).clamp(min=-0.5),
    "minimum in the tail": lambda: torch.cat([torch.ones(2048), torch.tensor([-3.0, 0.0])]),
    "with NaN and Inf": lambda: torch.tensor([1.0, float("nan"), 0.0, float("inf"), -2.0]),
}


@pytest.fixture(params=["processor's code", "AVX2 code", "baseline code", "one thread"])
def kernel_code(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every compiled version of the kernel the processor runs (AVX-512, AVX2, the baseline),
    and the large arrays read in parts on the threads the kernel has (where it has more than
    one) or whole on one."""
    lib = native.kernel()
    assert lib is not None
    if request.param == "baseline code":
        assert lib.stats_wide(0) == 0
    if request.param == "AVX2 code":
        if lib.stats_wide(-1) < 1:
            pytest.skip("the processor runs no AVX2")
        assert lib.stats_wide(1) == 1
    if request.param == "one thread":
        lib.stats_threads(1)
    try:
        yield request.param
    finally:
        lib.stats_wide(3)
        lib.stats_threads(0)


@needs_kernel
def test_the_kernel_reads_on_torchs_threads_only_with_torchs_runtime() -> None:
    lib = native.kernel()
    assert lib is not None
    if native.openmp() and len(native.openmp_runtimes()) == 1:  # torch's runtime, shared
        assert lib.stats_threads(-1) == torch.get_num_threads()
    else:  # none, or two that would fight over the cores: one thread
        assert lib.stats_threads(-1) == 1
    assert lib.stats_threads(1) == 1
    assert lib.stats_threads(0) == max(1, lib.stats_threads(-1))


@needs_kernel
@pytest.mark.parametrize("n", [(1 << 18) - 1, 1 << 18, (1 << 18) + 1023, 3 << 18])
def test_reading_in_parts_gives_the_numbers_of_one_read(n: int) -> None:
    lib = native.kernel()
    assert lib is not None
    t = torch.randn(n, generator=_g()) * 2 + 1
    t[: n // 2 : 7] = 0.0
    t[n // 3] = -40.0  # the minimum in the middle part, the maximum in the last one
    t[-5] = 50.0
    try:
        lib.stats_threads(1)
        whole = compute_stats(t)
        lib.stats_threads(0)
        parts = compute_stats(t)
    finally:
        lib.stats_threads(0)
    assert whole is not None and parts is not None
    assert (parts.min, parts.max, parts.zero_fraction) == (-40.0, 50.0, whole.zero_fraction)
    assert parts.histogram == whole.histogram
    assert math.isclose(parts.mean, whole.mean, rel_tol=1e-9)
    assert math.isclose(parts.std, whole.std, rel_tol=1e-9)


@needs_kernel
@pytest.mark.parametrize("name", list(CASES))
def test_the_kernel_gives_torchs_numbers(
    name: str, kernel_code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = CASES[name]()
    mine, theirs = compute_stats(t), _torch_way(t, monkeypatch)
    assert mine is not None and theirs is not None
    assert (mine.numel, mine.nan, mine.inf, mine.sampled) == (
        theirs.numel, theirs.nan, theirs.inf, theirs.sampled,
    )  # fmt: skip
    assert mine.zero_fraction == theirs.zero_fraction
    assert (mine.min, mine.max) == (theirs.min, theirs.max)
    for field in ("mean", "std"):
        a, b = getattr(mine, field), getattr(theirs, field)
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6 * max(1.0, abs(theirs.std))), field
    assert mine.histogram == theirs.histogram
    exact = t.double()[torch.isfinite(t.double())]
    assert math.isclose(mine.mean, float(exact.mean()), rel_tol=1e-6, abs_tol=1e-9)


@needs_kernel
def test_what_the_kernel_must_not_read_goes_the_torch_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    real = stats_module._native_stats

    def spy(lib: object, x: torch.Tensor) -> Stats:
        seen.append(x.numel())
        return real(lib, x)

    monkeypatch.setattr(stats_module, "_native_stats", spy)
    base = torch.randn(64, 64, generator=_g())
    compute_stats(base.t())  # not contiguous
    compute_stats(base.half())  # float16
    compute_stats(torch.nn.Parameter(base))  # a Parameter detaches to a plain tensor: fine
    assert seen == [4096]
    negated = compute_stats(torch._neg_view(base.double()))  # resolved first, then read
    assert negated is not None and math.isclose(negated.mean, -float(base.double().mean()))


def test_no_compiler_means_the_torch_way(tmp_path: Path) -> None:
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "XDG_CACHE_HOME": str(tmp_path)}
    code = (
        "import torch\n"
        "from inspector.engine import native\n"
        "from inspector.engine.capture.stats import compute_stats\n"
        "assert native.kernel() is None\n"
        "s = compute_stats(torch.arange(10.0))\n"
        "print(s.mean, s.min, s.max)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4.5", "0.0", "9.0"]
    env["CC"], env["TORCH_INSPECTOR_NATIVE"] = "cc", "0"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _with_compiler_refusing(pattern: str, tmp_path: Path, lines: list[str]) -> list[str]:
    """Run `lines` in a fresh interpreter whose C compiler fails on any argument matching the
    shell pattern `pattern` (and builds into an empty cache); its printed words."""
    real = shutil.which("cc") or shutil.which("gcc")
    assert real is not None
    wrapper = tmp_path / "cc"
    wrapper.write_text(
        f'#!/bin/sh\nfor a in "$@"; do case "$a" in {pattern}) exit 1;; esac; done\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {**os.environ, "CC": str(wrapper), "XDG_CACHE_HOME": str(tmp_path)}
    code = "\n".join(["import torch", "from inspector.engine import native", *lines])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@needs_kernel
def test_a_compiler_without_openmp_builds_the_one_thread_kernel(tmp_path: Path) -> None:
    printed = _with_compiler_refusing("-fopenmp", tmp_path, [
        "from inspector.engine.capture.stats import compute_stats",
        "lib = native.kernel()",
        "print(lib is not None, native.openmp(), lib.stats_threads(-1))",
        "print(compute_stats(torch.arange(1 << 20, dtype=torch.float32)).max)",
    ])  # fmt: skip
    assert printed == ["True", "False", "1", str(float((1 << 20) - 1))]


@needs_kernel
@pytest.mark.parametrize("name", ["normal 1M float32", "tiny spread", "with NaN and Inf"])
def test_a_tensor_that_requires_grad_is_read_as_it_is(name: str) -> None:
    t = CASES[name]().requires_grad_()
    with torch.enable_grad():
        mine = compute_stats(t)
        version = t._version
    assert mine == compute_stats(t.detach().clone())
    assert t._version == version and t.grad is None and t.grad_fn is None


@needs_kernel
def test_the_extension_is_called_where_pythons_headers_are() -> None:
    headers = sysconfig.get_paths().get("include") or ""
    assert native.fast_call() == Path(headers, "Python.h").is_file()


@needs_kernel
@pytest.mark.parametrize("name", list(CASES))
def test_the_extension_and_ctypes_read_the_same(name: str) -> None:
    lib = native.kernel()
    read = native.reader()
    assert lib is not None and read is not None
    t = CASES[name]().to(torch.float64 if name == "integers" else None)
    wide = t.dtype == torch.float64
    n = t.numel()
    step, count = (n // 4096, 4096) if n > 4096 else (1, n)
    args = (wide, t.data_ptr(), n, step, count, 24)
    mine, theirs = read(*args), native._ctypes_reader(lib)(*args)
    assert repr(mine) == repr(theirs)  # NaN included
    assert sum(mine[5]) == (count if math.isfinite(mine[2]) and math.isfinite(mine[3]) else 0)


@needs_kernel
def test_the_extension_refuses_a_sample_outside_the_array() -> None:
    if not native.fast_call():
        pytest.skip("built without Python's headers")
    read = native.reader()
    assert read is not None
    t = torch.zeros(10)
    assert read(False, t.data_ptr(), 10, 3, 4, 24)[5][0] == 4  # 0, 3, 6, 9: inside
    for bad in [(10, 4, 4, 24), (10, 1, 11, 24), (10, 1, 4, 0), (0, 1, 0, 24), (10, 0, 1, 24)]:
        with pytest.raises(ValueError, match="inside the array"):
            read(False, t.data_ptr(), *bad)


@needs_kernel
def test_without_pythons_headers_the_kernel_is_called_through_ctypes(tmp_path: Path) -> None:
    printed = _with_compiler_refusing("-I*", tmp_path, [  # finds no Python.h
        "from inspector.engine.capture.stats import compute_stats",
        "print(native.kernel() is not None, native.fast_call())",
        "s = compute_stats(torch.arange(1 << 20, dtype=torch.float32))",
        "print(s.max, sum(s.histogram))",
    ])  # fmt: skip
    assert printed == ["True", "False", str(float((1 << 20) - 1)), str(SAMPLE_SIZE)]


@needs_kernel
def test_the_extension_and_the_controls_are_one_library() -> None:
    # stats_threads and stats_wide (through ctypes) set what the extension's read runs: the
    # loader gives both the same object, so its writable data is mapped once.
    maps = Path("/proc/self/maps")
    if not native.fast_call() or not maps.is_file():
        pytest.skip("no extension, or no /proc here")
    lib = native.kernel()
    assert lib is not None
    writable = [line for line in maps.read_text().splitlines() if line.endswith(lib._name)]
    assert sum(" rw-p " in line for line in writable) == 1
