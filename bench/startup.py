"""Time to the first paint of `python -m inspector demo`, beside `python -c "import torch"`.

Each run is a fresh process on a pseudo-terminal (80x24) that the debugger draws on; the
first paint is the moment its status line ("paused before ...") reaches the terminal. The
two commands alternate, five runs each by default; medians and the difference print last.

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_paint(timeout: float = 60.0) -> float:
    """Seconds from start to the status line of the demo on a fresh 80x24 terminal."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TERM"] = "xterm-256color"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "demo"], cwd=ROOT, env=env,
        stdin=child, stdout=child, stderr=child, start_new_session=True,
    )  # fmt: skip
    os.close(child)
    seen = b""
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([main], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(main, 65536)
                except OSError:
                    break
                if b"paused before" in seen:
                    return time.perf_counter() - start
        raise RuntimeError("the demo never painted its status line")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(main)


def import_torch() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    ns = parser.parse_args()
    paint, torch_only = [], []
    first_paint()  # warm the file cache once, as a user's second start would be
    for _ in range(ns.runs):
        torch_only.append(import_torch())
        paint.append(first_paint())
    a, b = statistics.median(torch_only), statistics.median(paint)
    print(f"import torch: median {a:.2f} s {sorted(round(t, 2) for t in torch_only)}")
    print(f"demo first paint: median {b:.2f} s {sorted(round(t, 2) for t in paint)}")
    print(f"first paint - import torch: {b - a:+.2f} s (goal <= +0.50 s)")


if __name__ == "__main__":
    main()
