"""Two ranks, one terminal: `torchrun ... -m inspector run` in a real terminal (tmux).

One rank draws the debugger (its rank in the status line); the other runs headless and
writes its stops to inspector-rankN.log. Every job runs under `timeout`: a hang fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.distributed.torchrun import JOBS, ROOT, free_port, require_gloo
from tests.tui.terminal_driver import Terminal

pytestmark = [
    pytest.mark.torchrun,
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def terminal(tmp_path: Path):  # type: ignore[no-untyped-def]
    require_gloo()
    term = Terminal(f"inspector-ranks-{os.getpid()}-{id(tmp_path)}", tmp_path)
    yield term
    term.close()


def _torchrun(tmp_path: Path, *inspector_args: str) -> str:
    env = f"cd {tmp_path} && GLOO_SOCKET_IFNAME=lo OMP_NUM_THREADS=1 PYTHONPATH={ROOT}"
    return (
        f"{env} timeout -k 5 120 {sys.executable} -m torch.distributed.run --nproc_per_node 2 "
        f"--nnodes 1 --master_addr 127.0.0.1 --master_port {free_port()} "
        f"-m inspector run {' '.join(inspector_args)}"
    )


def _ended_well(terminal: Terminal, timeout: float = 60) -> None:
    """Both ranks ran their script to its end, and torchrun exited 0. One exception, outside
    the inspector: gloo sometimes aborts a rank that tears its group down while the peer still
    talks to it ("terminate called without an active exception", jobs/jobkit.py's finish()),
    after the script's last line; then the job's exit status is torchrun's 1."""
    code = terminal.exit_code(timeout=timeout)
    out = terminal.screen(history=True)
    assert out.count("seconds plain") == 2, out  # each rank's last line (they may interleave)
    if code != 0:
        assert "terminate called without an active exception" in out, out


def _status(screen: str) -> str:
    return next((line for line in screen.splitlines() if "paused" in line), "")


def test_the_first_rank_to_stop_gets_the_terminal(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start(
        _torchrun(tmp_path, "--break", "fc2", str(JOBS / "healthy.py"), "plain"), 120, 30
    )
    screen = terminal.wait_for(lambda s: "breakpoint fc2" in s, timeout=60)
    status = _status(screen)
    owner = 0 if status.lstrip().startswith("[rank 0]") else 1
    assert status.lstrip().startswith(f"[rank {owner}] paused before model.module.fc2"), screen
    for n in (2, 3):
        terminal.keys("c")
        terminal.wait_for(lambda s, n=n: f"pass {n}" in _status(s), timeout=30)
    terminal.keys("c")
    _ended_well(terminal)
    other = 1 - owner
    log = (tmp_path / f"inspector-rank{other}.log").read_text()
    assert (
        log.count(f"torch-inspector [rank {other}]: breakpoint fc2: before model.module.fc2") == 3
    )
    assert not (tmp_path / f"inspector-rank{owner}.log").exists()
    out = terminal.screen(history=True)
    assert f"[rank{other}]: torch-inspector: another rank has the terminal" in out


def test_rank_option_picks_the_rank(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start(
        _torchrun(tmp_path, "--rank", "1", "--break", "fc2", str(JOBS / "healthy.py"), "plain"),
        120,
        30,
    )
    screen = terminal.wait_for(lambda s: "breakpoint fc2" in s, timeout=60)
    assert _status(screen).lstrip().startswith("[rank 1] paused before"), screen
    terminal.keys("q")  # the debugger closes; rank 1 runs on with no more stops
    _ended_well(terminal)
    assert (tmp_path / "inspector-rank0.log").read_text().count("breakpoint fc2") == 3


def test_post_mortem_gives_the_terminal_to_the_failing_rank(
    terminal: Terminal, tmp_path: Path
) -> None:
    """Rank 1's second batch is 20x20: it fails in fc1 and takes the terminal; after q its
    real error is printed with torch's [rank1]: prefix and torchrun reports exit code 1."""
    terminal.start(_torchrun(tmp_path, "--post-mortem", str(JOBS / "shape.py")), 120, 30)
    screen = terminal.wait_for(lambda s: "error" in _status(s), timeout=60)
    assert _status(screen).lstrip().startswith("[rank 1] paused after model.module.fc1"), screen
    terminal.keys("q")
    assert terminal.exit_code(timeout=90) == 1
    out = terminal.screen(history=True)
    assert "[rank1]: RuntimeError: mat1 and mat2 shapes cannot be multiplied" in out
