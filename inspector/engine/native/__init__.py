"""A one-pass statistics kernel in C, built on first use with the system C compiler.

torch reduces a tensor once per statistic (sum, sum of squares, min and max, zero count: four
or five reads of it from memory); `stats.c` reads it once. The shared library is built into
the user's cache directory (`$XDG_CACHE_HOME/torch-inspector`, else `~/.cache/...`), keyed by
a hash of the source, the compiler flags and the platform, so it is built once per machine.
No compiler, a failed build or `TORCH_INSPECTOR_NATIVE=0`: `kernel()` is None and the
statistics come from torch's reductions, with the same results.

Where Python's headers are installed the library is also a CPython extension module
(`call.c`), whose `read` function is what the statistics call (a ctypes call costs twice as
much, which matters right after a large op: call.c says why); elsewhere the kernel is called
through ctypes. Either way the GIL is released during the read, and the kernel runs AVX2 code
picked at run time where the processor has it (stats.c says why). It is built with
OpenMP where the compiler has it, and reads a large array on several threads only when its
OpenMP runtime is the one torch already runs (one library in the process): then the threads
are torch's own workers. Otherwise (torch on another runtime, or no way to tell) it reads on
one thread, and without OpenMP it is built as plain C.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch  # noqa: F401  (first: a library built with OpenMP must find torch's runtime loaded)

SOURCE = Path(__file__).with_name("stats.c")
CALL_SOURCE = Path(__file__).with_name("call.c")  # the extension module around stats.c
# Flags to try in turn; stats.c picks its AVX2 code at run time on x86-64.
FLAGS = (["-O3", "-fopenmp"], ["-O3"])
# File names of OpenMP runtimes: GNU, LLVM, Intel.
OPENMP_RUNTIMES = re.compile(r"lib(gomp|omp|iomp5)\b[^/]*$")
_lock = threading.Lock()
_state: dict[str, Any] = {}

# read(f64, address, n, step, count, bins) -> (sum, squares, min, max, zeros, histogram)
Reader = Callable[[bool, int, int, int, int, int], tuple[float, float, float, float, float, Any]]


def kernel() -> ctypes.CDLL | None:
    """The loaded library, built if needed; None when it cannot be had."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
    return _state["lib"]


def reader() -> Reader | None:
    """The kernel as one function (the extension's where it was built, else through ctypes);
    None when there is no kernel."""
    return None if kernel() is None else _state["read"]


def fast_call() -> bool:
    """Whether `reader()` is the extension module's function rather than a ctypes call."""
    return kernel() is not None and bool(_state.get("extension"))


def openmp() -> bool:
    """Whether the loaded library was built with OpenMP (it may still run on one thread)."""
    return kernel() is not None and bool(_state.get("openmp"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "torch-inspector"


def _load() -> ctypes.CDLL | None:
    if os.environ.get("TORCH_INSPECTOR_NATIVE", "1") == "0" or not SOURCE.is_file():
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    headers = sysconfig.get_paths().get("include") or ""
    with_python = bool(headers) and CALL_SOURCE.is_file() and Path(headers, "Python.h").is_file()
    code = SOURCE.read_bytes() + (CALL_SOURCE.read_bytes() if with_python else b"")
    for flags in FLAGS:
        for extension in (True, False) if with_python else (False,):
            source = CALL_SOURCE if extension else SOURCE
            build_flags = [*flags, f"-I{headers}"] if extension else flags
            tag = hashlib.sha256(
                code
                + " ".join(
                    [compiler, *build_flags, str(source.name), platform.machine(), sys.platform]
                ).encode()
            ).hexdigest()[:16]
            target = _cache_dir() / f"stats-{tag}.so"
            if not target.is_file() and not _build(compiler, build_flags, source, target):
                continue
            try:
                read = _import_reader(target) if extension else None
                lib = ctypes.CDLL(str(target))  # the same library: its controls, or the kernel
            except (OSError, ImportError):
                continue
            _declare(lib)
            _state["extension"] = extension
            _state["read"] = read if read is not None else _ctypes_reader(lib)
            _state["openmp"] = "-fopenmp" in flags
            if _state["openmp"] and len(openmp_runtimes()) != 1:
                lib.stats_threads(1)  # its own runtime would fight torch's spinning workers
            return lib
    return None


def _import_reader(target: Path) -> Reader:
    """The `read` function of the extension module built into `target`."""
    name = "_inspector_stats"  # PyInit__inspector_stats in call.c
    loader = importlib.machinery.ExtensionFileLoader(name, str(target))
    spec = importlib.util.spec_from_file_location(name, str(target), loader=loader)
    if spec is None:
        raise ImportError(f"cannot load {target}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    read: Reader = module.read
    return read


def _declare(lib: ctypes.CDLL) -> None:
    for name in ("stats_f32", "stats_f64"):  # the array goes as its address: no cast
        fn = getattr(lib, name)
        fn.argtypes = [
            ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int64),
        ]  # fmt: skip
        fn.restype = None
    for name in ("stats_wide", "stats_threads"):
        getattr(lib, name).argtypes = [ctypes.c_int]
        getattr(lib, name).restype = ctypes.c_int


_Out = ctypes.c_double * 5


def _ctypes_reader(lib: ctypes.CDLL) -> Reader:
    """`read` through ctypes, for a library built without Python's headers."""
    f32, f64 = lib.stats_f32, lib.stats_f64

    def read(
        wide: bool, address: int, n: int, step: int, count: int, bins: int
    ) -> tuple[float, float, float, float, float, Any]:
        out, hist = _Out(), (ctypes.c_int64 * bins)()
        (f64 if wide else f32)(address, n, step, count, bins, out, hist)
        total, squares, low, high, zeros = out[:]  # a slice reads a ctypes array in one call
        return total, squares, low, high, zeros, tuple(hist[:])

    return read


def openmp_runtimes() -> set[str]:
    """The files of the OpenMP runtimes loaded in this process (Linux; empty elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "/" in line}
    except OSError:
        return set()
    return {os.path.realpath(p) for p in paths if OPENMP_RUNTIMES.search(p)}


def _build(compiler: str, flags: list[str], source: Path, target: Path) -> bool:
    """Compile into a temporary file and move it into place (two processes may race)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        done = subprocess.run(
            [compiler, *flags, "-shared", "-fPIC", "-o", tmp, str(source), "-lm"],
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0:
            os.unlink(tmp)
            return False
        os.replace(tmp, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
