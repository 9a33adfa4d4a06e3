"""A one-pass statistics kernel in C, built on first use with the system C compiler.

torch reduces a tensor once per statistic (sum, sum of squares, min and max, zero count: four
or five reads of it from memory); `stats.c` reads it once. The shared library is built into
the user's cache directory (`$XDG_CACHE_HOME/torch-inspector`, else `~/.cache/...`), keyed by
a hash of the source, the compiler flags and the platform, so it is built once per machine.
No compiler, a failed build or `TORCH_INSPECTOR_NATIVE=0`: `kernel()` is None and the
statistics come from torch's reductions, with the same results.

The library is plain C called through ctypes (which releases the GIL during the call), one
thread, with AVX2 code picked at run time where the processor has it (stats.c says why).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("stats.c")
# One set of flags for every machine: stats.c picks its AVX2 code at run time on x86-64.
FLAGS = (["-O3"],)
_lock = threading.Lock()
_state: dict[str, ctypes.CDLL | None] = {}


def kernel() -> ctypes.CDLL | None:
    """The loaded library, built if needed; None when it cannot be had."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
    return _state["lib"]


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
        for name, pointer in (("stats_f32", ctypes.c_float), ("stats_f64", ctypes.c_double)):
            fn = getattr(lib, name)
            fn.argtypes = [
                ctypes.POINTER(pointer), ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                ctypes.c_int, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int64),
            ]  # fmt: skip
            fn.restype = None
        lib.stats_wide.argtypes = [ctypes.c_int]
        lib.stats_wide.restype = ctypes.c_int
        return lib
    return None


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
