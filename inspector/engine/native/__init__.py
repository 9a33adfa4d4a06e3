"""A one-pass statistics kernel in C, built on first use with the system C compiler.

torch reduces a tensor once per statistic (sum, sum of squares, min and max, zero count: four
or five reads of it from memory); `stats.c` reads it once. The shared library is built into
the user's cache directory (`$XDG_CACHE_HOME/torch-inspector`, else `~/.cache/...`), keyed by
a hash of the source, the compiler flags and the platform, so it is built once per machine.
No compiler, a failed build or `TORCH_INSPECTOR_NATIVE=0`: `kernel()` is None and the
statistics come from torch's reductions, with the same results.

The library is plain C called through ctypes (which releases the GIL during the call), with
AVX2 code picked at run time where the processor has it (stats.c says why). It is built with
OpenMP where the compiler has it, and reads a large array on several threads only when its
OpenMP runtime is the one torch already runs (one library in the process): then the threads
are torch's own workers. Otherwise (torch on another runtime, or no way to tell) it reads on
one thread, and without OpenMP it is built as plain C.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch  # noqa: F401  (first: a library built with OpenMP must find torch's runtime loaded)

SOURCE = Path(__file__).with_name("stats.c")
# Flags to try in turn; stats.c picks its AVX2 code at run time on x86-64.
FLAGS = (["-O3", "-fopenmp"], ["-O3"])
# File names of OpenMP runtimes: GNU, LLVM, Intel.
OPENMP_RUNTIMES = re.compile(r"lib(gomp|omp|iomp5)\b[^/]*$")
_lock = threading.Lock()
_state: dict[str, Any] = {}


def kernel() -> ctypes.CDLL | None:
    """The loaded library, built if needed; None when it cannot be had."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
    return _state["lib"]


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
    source = SOURCE.read_bytes()
    for flags in FLAGS:
        tag = hashlib.sha256(
            source + " ".join([compiler, *flags, platform.machine(), sys.platform]).encode()
        ).hexdigest()[:16]
        target = _cache_dir() / f"stats-{tag}.so"
        if not target.is_file() and not _build(compiler, flags, target):
            continue
        try:
            lib = ctypes.CDLL(str(target))
        except OSError:
            continue
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
        _state["openmp"] = "-fopenmp" in flags
        if _state["openmp"] and len(openmp_runtimes()) != 1:
            lib.stats_threads(1)  # its own runtime would fight torch's spinning workers
        return lib
    return None


def openmp_runtimes() -> set[str]:
    """The files of the OpenMP runtimes loaded in this process (Linux; empty elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "/" in line}
    except OSError:
        return set()
    return {os.path.realpath(p) for p in paths if OPENMP_RUNTIMES.search(p)}


def _build(compiler: str, flags: list[str], target: Path) -> bool:
    """Compile into a temporary file and move it into place (two processes may race)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        done = subprocess.run(
            [compiler, *flags, "-shared", "-fPIC", "-o", tmp, str(SOURCE), "-lm"],
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
