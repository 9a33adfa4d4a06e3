"""SIGUSR1 to a script under `run`: it says where it is, in module terms, and goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """\
import time
from pathlib import Path
import torch
from torch import nn

class Waits(nn.Module):
    def forward(self, x):
        flag = Path({flag!r})
        Path({ready!r}).write_text("ready")
        while not flag.exists():
            time.sleep(0.02)
        return x * 2

model = nn.Sequential(nn.Linear(2, 2), Waits())
model(torch.ones(1, 2))
print("done")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_sigusr1_says_which_module_the_script_is_in(tmp_path: Path) -> None:
    flag, ready = tmp_path / "go", tmp_path / "ready"
    script = tmp_path / "waits.py"
    script.write_text(SCRIPT.format(flag=str(flag), ready=str(ready)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", str(script)], cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
        flag.write_text("go")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "torch-inspector: in the forward of model.1 (Waits), pass 1" in err
    assert out == "done\n"  # the signal did not end or disturb the script


def test_a_timeout_outside_a_process_group_gets_no_collective_line(tmp_path: Path) -> None:
    script = tmp_path / "socket_timeout.py"
    script.write_text("raise TimeoutError('timed out reading from the server')\n")
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "run", str(script)], cwd=ROOT,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "TimeoutError: timed out" in result.stderr
    assert "when the collective timed out" not in result.stderr
