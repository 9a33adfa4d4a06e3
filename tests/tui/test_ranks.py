"""The terminal claim of a torchrun job: a rank without it waits for the owner to end before
it prints, and a Ctrl+C ends that wait without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from inspector.tui.ranks import TerminalClaim

_HOLD = (
    "import sys, time; from inspector.tui.ranks import TerminalClaim; "
    "claim = TerminalClaim(); assert claim.try_claim(); print('held', flush=True); "
    "time.sleep(float(sys.argv[1]))"
)


@pytest.fixture
def owner(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[subprocess.Popen[str]]:
    """Another process of the same job, holding the terminal for 30 s unless ended."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", f"test-ranks-{os.getpid()}")
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_rank_without_the_terminal_waits_for_its_owner_to_end(
    owner: subprocess.Popen[str],
) -> None:
    claim = TerminalClaim()
    assert not claim.try_claim()
    start = time.monotonic()
    signal.signal(signal.SIGALRM, lambda *_: owner.terminate())
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        assert claim.wait_free()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert 0.25 < time.monotonic() - start < 10  # until the owner ended, not before
    assert claim.try_claim()  # free now
    claim.release()


def test_ctrl_c_ends_the_wait_without_raising(owner: subprocess.Popen[str]) -> None:
    claim = TerminalClaim()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        assert claim.wait_free() is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, previous)
    assert owner.poll() is None  # the owner still holds it
