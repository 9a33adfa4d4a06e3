"""The real terminal: tmux runs the app, send-keys types, capture-pane reads the screen."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Terminal:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp

    def start(self, command: str, width: int = 100, height: int = 30) -> None:
        script = self.tmp / "run.sh"
        script.write_text(
            f"cd {ROOT}\nstty -g > {self.tmp}/stty_before\n{command}\n"
            f"echo EXIT=$? > {self.tmp}/exit\nstty -g > {self.tmp}/stty_after\nsleep 60\n"
        )
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
             f"bash {script}"],
            check=True,
        )  # fmt: skip

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def wait_for(self, check: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; last screen:\n{text}")
            time.sleep(0.1)

    def exit_code(self, timeout: float = 30.0) -> int:
        path = self.tmp / "exit"
        deadline = time.monotonic() + timeout
        while not path.exists() or not path.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit; screen:\n{self.screen()}")
            time.sleep(0.1)
        time.sleep(0.3)  # let stty_after be written
        return int(path.read_text().strip().split("=")[1])

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path):  # type: ignore[no-untyped-def]
    term = Terminal(f"inspector-test-{time.monotonic_ns()}", tmp_path)
    yield term
    term.close()


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
