"""A person at a real terminal: tmux runs a command, send-keys types, capture-pane reads."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp

    def start(self, command: str, width: int = 100, height: int = 30) -> None:
        script = self.tmp / "run.sh"
        # A person at a terminal: CI=true (set by the CI runner) means "nobody is there".
        script.write_text(
            f"cd {ROOT}\nunset CI\nstty -g > {self.tmp}/stty_before\n{command}\n"
            f"echo EXIT=$? > {self.tmp}/exit\nstty -g > {self.tmp}/stty_after\nsleep 60\n"
        )
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
             f"bash {script}"],
            check=True,
        )  # fmt: skip

    def screen(self, history: bool = False, escapes: bool = False) -> str:
        extra = ["-S", "-500"] if history else []
        if escapes:
            extra.append("-e")
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", *extra, "-t", self.name], capture_output=True, text=True
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
