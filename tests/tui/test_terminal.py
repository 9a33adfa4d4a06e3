"""The real terminal: tmux runs the app, send-keys types, capture-pane reads the screen."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.tui.terminal_driver import Terminal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_demo_in_a_real_terminal(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start(f"{sys.executable} -m inspector demo")
    first = terminal.wait_for(lambda s: "paused before (root) (SeedCNN)" in s)
    assert "(4, 3, 32, 32)" in first
    terminal.keys("s")  # step into: conv1 starts
    terminal.wait_for(lambda s: "paused before conv1 (Conv2d)" in s)
    terminal.keys("c")  # continue: the stray view fails
    failed = terminal.wait_for(lambda s: "error" in s.splitlines()[0] and "768" in s)
    assert "conv1" in failed and "pool" in failed and "MaxPool2d" in failed
    assert "view(-1, 27)" in failed or "x.view(-1, 3 * 3 * 3)" in failed
    terminal.keys("c")  # the pass ends with the diagnosis
    terminal.wait_for(lambda s: s.splitlines()[0].strip().startswith("failed: RuntimeError"))
    terminal.keys("q")
    assert terminal.exit_code() == 0
    before = (tmp_path / "stty_before").read_text()
    assert (tmp_path / "stty_after").read_text() == before  # the terminal is restored


SCRIPT = "examples/scripts/train_mlp.py"


def test_run_breaks_once_per_iteration_and_continues_to_the_end(terminal: Terminal) -> None:
    terminal.start(f"{sys.executable} -m inspector run --break fc2 {SCRIPT} 3")
    for n in (1, 2, 3):
        screen = terminal.wait_for(lambda s, n=n: "model.fc2 (Linear) · breakpoint fc2" in s
                                   and f"pass {n}" in s)  # fmt: skip
        assert "fc1" in screen and "(32, 8) → (32, 16)" in screen
        terminal.keys("c")  # continue: the script runs until the next stop
    assert terminal.exit_code() == 0
    out = terminal.screen(history=True)
    for step in range(3):
        assert f"step {step} loss" in out
    assert "done" in out


def test_run_q_closes_the_debugger_and_the_script_runs_on(terminal: Terminal) -> None:
    terminal.start(f"{sys.executable} -m inspector run {SCRIPT} 20")
    terminal.wait_for(lambda s: "paused before model (Net)" in s)
    terminal.keys("q")  # quit the debugger: the script goes on to its end, no more stops
    assert terminal.exit_code() == 0
    out = terminal.screen(history=True)
    assert "step 19 loss" in out and "done" in out


def test_run_ctrl_c_after_q_interrupts_the_script(terminal: Terminal, tmp_path: Path) -> None:
    script = tmp_path / "forever.py"
    script.write_text(
        "import time\nimport torch\nfrom torch import nn\nmodel = nn.Linear(2, 2)\n"
        "model(torch.randn(1, 2))\nprint('running free', flush=True)\n"
        "while True:\n    time.sleep(0.01)\n"
    )
    terminal.start(f"{sys.executable} -m inspector run {script}")
    terminal.wait_for(lambda s: "paused before model (Linear)" in s)
    terminal.keys("q")
    terminal.wait_for(lambda s: "running free" in s)
    terminal.keys("C-c")  # as without the debugger: KeyboardInterrupt in the script, 130
    assert terminal.exit_code(timeout=15) == 130
    assert "KeyboardInterrupt" in terminal.screen(history=True)


def test_run_post_mortem_q_keeps_the_traceback_and_exit_code(terminal: Terminal) -> None:
    terminal.start(
        f"{sys.executable} -m inspector run --post-mortem examples/scripts/train_broken.py"
    )
    terminal.wait_for(lambda s: "error" in s.splitlines()[0])
    terminal.keys("q")
    assert terminal.exit_code() == 1
    assert "RuntimeError: mat1 and mat2" in terminal.screen(history=True)


def test_run_piped_to_tee_still_debugs(terminal: Terminal, tmp_path: Path) -> None:
    log = tmp_path / "log"
    terminal.start(f"{sys.executable} -m inspector run --break fc2 {SCRIPT} 1 | tee {log}")
    terminal.wait_for(lambda s: "model.fc2 (Linear) · breakpoint fc2" in s)
    terminal.keys("c")
    assert terminal.exit_code() == 0  # tee's: the script's own is checked below
    assert log.read_text() == "step 0 loss 0.6852\ndone\n"


def test_run_with_stderr_in_a_file_runs_headless(terminal: Terminal, tmp_path: Path) -> None:
    err = tmp_path / "err.log"
    terminal.start(f"{sys.executable} -m inspector run --break fc2 {SCRIPT} 2 2>{err}")
    assert terminal.exit_code() == 0  # nothing waited for a key
    text = err.read_text()
    assert "\x1b" not in text  # no escape codes drawn into the file
    assert text.count("torch-inspector: breakpoint fc2: before model.fc2 (Linear)") == 2
    assert "done" in terminal.screen(history=True)


def test_run_post_mortem_opens_only_on_failure(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start(
        f"{sys.executable} -m inspector run --post-mortem examples/scripts/train_broken.py"
    )
    screen = terminal.wait_for(lambda s: "error" in s.splitlines()[0])
    assert "model.0" in screen.splitlines()[0] and "pass 2" in screen.splitlines()[0]
    terminal.wait_for(lambda s: "nn.Linear(10, 16)" in s)
    terminal.keys("c")
    assert terminal.exit_code() == 1
    out = terminal.screen(history=True)
    assert "step 0 loss" in out and "RuntimeError: mat1 and mat2" in out


def test_breakpoint_under_pythonbreakpoint_steps_and_continues(terminal: Terminal) -> None:
    script = "examples/scripts/with_breakpoint.py"
    terminal.start(f"PYTHONBREAKPOINT=inspector.set_trace {sys.executable} {script}")
    terminal.wait_for(lambda s: "paused before model (Sequential)" in s)
    terminal.keys("s")  # step into the first Linear
    terminal.wait_for(lambda s: "paused before model.0 (Linear)" in s)
    terminal.keys("n")  # over it
    terminal.wait_for(lambda s: "paused after model.0 (Linear)" in s)
    terminal.keys("c")  # no breakpoint left: detach and let the script finish
    assert terminal.exit_code() == 0
    out = terminal.screen(history=True)
    assert "before the breakpoint" in out
    assert "output shape (3, 2)" in out and "second pass done" in out


def test_ctrl_c_at_a_pause_is_a_keyboard_interrupt(terminal: Terminal, tmp_path: Path) -> None:
    script = "examples/scripts/with_breakpoint.py"
    terminal.start(f"PYTHONBREAKPOINT=inspector.set_trace {sys.executable} {script}")
    terminal.wait_for(lambda s: "paused before model (Sequential)" in s)
    terminal.keys("C-c")
    assert terminal.exit_code() == 130
    assert "KeyboardInterrupt" in terminal.screen(history=True)
    assert (tmp_path / "stty_after").read_text() == (tmp_path / "stty_before").read_text()


def hues(screen: str) -> set[str]:
    """The colours (not greys) in a screen's escape codes: the basic hues (1-6, 9-14, SGR
    31-36), the colour cube (16-231) off its grey diagonal, RGB with unequal parts."""
    import re

    found: set[str] = set()
    for code in re.findall("\x1b\\[([0-9;]*)m", screen):
        parts = [int(p) for p in code.split(";") if p]
        i = 0
        while i < len(parts):
            p = parts[i]
            if p in (38, 48) and i + 2 < len(parts) + 1 and parts[i + 1] == 5:
                n = parts[i + 2]
                cube = (n - 16) // 36, (n - 16) // 6 % 6, (n - 16) % 6
                if 1 <= n <= 6 or 9 <= n <= 14 or (16 <= n <= 231 and len(set(cube)) > 1):
                    found.add(f"{p};5;{n}")
                i += 3
            elif p in (38, 48) and parts[i + 1] == 2:
                r, g, b = parts[i + 2 : i + 5]
                if not r == g == b:
                    found.add(f"{p};2;{r};{g};{b}")
                i += 5
            else:
                if 31 <= p <= 36 or 41 <= p <= 46 or 91 <= p <= 96 or 101 <= p <= 106:
                    found.add(str(p))
                i += 1
    return found


def test_no_color_leaves_only_greys_on_screen(terminal: Terminal) -> None:
    terminal.start(f"NO_COLOR=1 {sys.executable} -m inspector demo")
    terminal.wait_for(lambda s: "paused before (root) (SeedCNN)" in s)
    terminal.keys("c")  # the failure: red in colour
    terminal.wait_for(lambda s: "error" in s.splitlines()[0])
    screen = terminal.screen(escapes=True)
    assert "\x1b[" in screen and hues(screen) == set()
    terminal.keys("q")
    assert terminal.exit_code() == 0


def test_colour_is_there_without_no_color(terminal: Terminal) -> None:
    terminal.start(f"{sys.executable} -m inspector demo")
    terminal.wait_for(lambda s: "paused before (root) (SeedCNN)" in s)
    terminal.keys("c")
    terminal.wait_for(lambda s: "error" in s.splitlines()[0])
    assert hues(terminal.screen(escapes=True))  # the check above can fail
    terminal.keys("q")
    assert terminal.exit_code() == 0
