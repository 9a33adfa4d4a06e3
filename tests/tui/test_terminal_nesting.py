"""Entry points inside one another, in a real terminal: one debugger, the terminal restored."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.tui.terminal_driver import Terminal
from tests.tui.test_terminal import pytestmark  # noqa: F401  (tmux)

TWO_PASSES = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
x = torch.randn(3, 4)
model(x)
print("first pass done", flush=True)
breakpoint()
model(x)
print("second pass done")
"""


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "two_passes.py"
    path.write_text(TWO_PASSES)
    return path


def test_plain_breakpoint_under_run_stops_in_the_open_debugger(
    terminal: Terminal, tmp_path: Path
) -> None:
    """pdb cannot share the screen with the debugger (it waited for keys behind it):
    under `run` a plain breakpoint() stops at the next module call, in the same app."""
    script = _script(tmp_path)
    terminal.start(f"unset PYTHONBREAKPOINT; {sys.executable} -m inspector run {script}")
    terminal.wait_for(lambda s: "paused before model (Sequential)" in s)
    terminal.keys("c")  # to the breakpoint() in the script
    screen = terminal.wait_for(
        lambda s: "breakpoint()" in s.splitlines()[0] and "pass 2" in s.splitlines()[0]
    )
    assert "paused before model (Sequential)" in screen
    terminal.keys("c")
    assert terminal.exit_code() == 0
    out = terminal.screen(history=True)
    assert "second pass done" in out
    assert "paused" not in out  # no frame of the debugger left over the shell
    assert (tmp_path / "stty_after").read_text() == (tmp_path / "stty_before").read_text()


def test_set_trace_under_run_uses_the_debugger_already_open(
    terminal: Terminal, tmp_path: Path
) -> None:
    script = _script(tmp_path)
    terminal.start(
        f"PYTHONBREAKPOINT=inspector.set_trace {sys.executable} -m inspector run {script}"
    )
    terminal.wait_for(lambda s: "paused before model (Sequential)" in s)
    terminal.keys("c")
    terminal.wait_for(lambda s: "breakpoint()" in s.splitlines()[0] and "pass 2" in s)
    terminal.keys("s")  # stepping goes on in the same debugger
    terminal.wait_for(lambda s: "paused before model.0 (Linear)" in s)
    terminal.keys("c")
    assert terminal.exit_code() == 0
    out = terminal.screen(history=True)
    assert "second pass done" in out and "paused" not in out


def test_pythonbreakpoint_zero_still_disables_breakpoint_under_run(
    terminal: Terminal, tmp_path: Path
) -> None:
    script = _script(tmp_path)
    terminal.start(f"PYTHONBREAKPOINT=0 {sys.executable} -m inspector run {script}")
    terminal.wait_for(lambda s: "paused before model (Sequential)" in s)
    terminal.keys("c")  # the breakpoint() does nothing: the script runs to its end
    assert terminal.exit_code() == 0
    assert "second pass done" in terminal.screen(history=True)
