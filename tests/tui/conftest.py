"""Fixtures of the TUI tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.tui.terminal_driver import Terminal


@pytest.fixture
def terminal(tmp_path: Path):  # type: ignore[no-untyped-def]
    term = Terminal(f"inspector-test-{time.monotonic_ns()}", tmp_path)
    yield term
    term.close()
