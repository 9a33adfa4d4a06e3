"""Start a real torchrun job on this machine: 2 CPU ranks, gloo, 127.0.0.1, a free port.

Every job runs under a hard timeout (`timeout` around torchrun, and a kill of its whole
process group as a backstop), so a hang fails the test that started it instead of hanging
the test run. Each rank's stdout and stderr are captured apart (torchrun's `--redirects`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

JOBS = Path(__file__).parent / "jobs"
ROOT = Path(__file__).resolve().parents[2]
TIMED_OUT = 124  # the exit status of `timeout` when the limit ran out


def require_gloo() -> None:
    """Skip the calling test when this torch cannot run a gloo job."""
    try:
        import torch.distributed as dist
    except ImportError:
        pytest.skip("torch.distributed is not importable in this build")
    if not dist.is_available():
        pytest.skip("torch was built without torch.distributed")
    if not dist.is_gloo_available():
        pytest.skip("torch.distributed has no gloo backend in this build")
    if shutil.which("timeout") is None:
        pytest.skip("coreutils `timeout` is missing: a hung job could not be stopped")


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Job:
    """What a finished (or stopped) job left: exit status, time, every rank's output."""

    command: list[str]
    returncode: int
    seconds: float
    timeout_s: float
    agent: str  # torchrun's own stdout and stderr: its summary of failed ranks
    stdout: dict[int, str] = field(default_factory=dict)
    stderr: dict[int, str] = field(default_factory=dict)

    @property
    def timed_out(self) -> bool:
        return self.returncode in (TIMED_OUT, -signal.SIGKILL, 128 + signal.SIGKILL)

    def output(self, rank: int) -> str:
        return self.stdout.get(rank, "") + self.stderr.get(rank, "")

    def lines(self, rank: int, prefix: str) -> list[str]:
        """Lines of `rank`'s stdout that start with `prefix` (after the job's own tag)."""
        tag = f"[rank{rank}] {prefix}"
        return [
            ln[len(tag) :].strip()
            for ln in self.stdout.get(rank, "").splitlines()
            if ln.startswith(tag)
        ]

    def describe(self) -> str:
        """Everything, for an assertion message."""
        parts = [
            f"$ {' '.join(self.command)}",
            f"exit {self.returncode} after {self.seconds:.1f} s",
        ]
        for rank in sorted(set(self.stdout) | set(self.stderr)):
            parts.append(f"--- rank {rank} stdout ---\n{self.stdout.get(rank, '')[-3000:]}")
            parts.append(f"--- rank {rank} stderr ---\n{self.stderr.get(rank, '')[-3000:]}")
        parts.append(f"--- torchrun ---\n{self.agent[-3000:]}")
        return "\n".join(parts)

    def assert_succeeded(self, last: str) -> None:
        """Every rank printed its `last` line and the job exited 0. One exception, outside
        the inspector: gloo sometimes aborts a rank that tears its group down while the peer
        still talks to it ("terminate called without an active exception", after jobkit's
        finish()); then torchrun exits 1 though every rank did its work."""
        self.assert_ended()
        for rank in range(2):
            assert self.lines(rank, last), self.describe()
        if self.returncode != 0:
            aborted = any(
                "terminate called without an active exception" in self.stderr.get(rank, "")
                for rank in self.stderr
            )
            assert aborted and "SIGABRT" in self.agent, self.describe()

    def assert_ended(self) -> None:
        """The job ended by itself, inside its time limit."""
        assert not self.timed_out, f"the job hung: stopped at {self.timeout_s} s\n{self.describe()}"


def run_job(
    script: str,
    *args: str,
    via_inspector: list[str] | None = None,
    timeout_s: float = 60.0,
    env: dict[str, str] | None = None,
    nproc: int = 2,
) -> Job:
    """Run `jobs/<script>` with `args` on `nproc` ranks under torchrun, at most `timeout_s`.

    Args:
        via_inspector: run the script through `python -m inspector <via_inspector...> SCRIPT`
            (e.g. ["run", "--post-mortem"]) instead of as itself.
        env: extra environment for the ranks.
    """
    require_gloo()
    path = str(JOBS / script)
    program = ["-m", "inspector", *via_inspector, path] if via_inspector else [path]
    environ = dict(os.environ)
    environ.update(
        GLOO_SOCKET_IFNAME="lo",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), environ.get("PYTHONPATH")) if p),
    )
    environ.pop("TORCHELASTIC_ERROR_FILE", None)
    environ.update(env or {})
    for attempt in range(2):  # a port taken between the pick and torchrun's bind: once more
        with tempfile.TemporaryDirectory(prefix="inspector-torchrun-") as logs:
            command = [
                "timeout", "-k", "5", str(int(timeout_s)),
                sys.executable, "-m", "torch.distributed.run",
                "--nproc_per_node", str(nproc), "--nnodes", "1",
                "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                "--log-dir", logs, "--redirects", "3",
                *program, *args,
            ]  # fmt: skip
            job = _run(command, environ, timeout_s, Path(logs))
        if attempt == 0 and "address already in use" in job.agent.lower():
            continue
        return job
    return job


def _run(command: list[str], environ: dict[str, str], timeout_s: float, logs: Path) -> Job:
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=JOBS,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the backstop kills all of it
    )
    try:
        agent, _ = proc.communicate(timeout=timeout_s + 15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        agent, _ = proc.communicate()
    seconds = time.monotonic() - start
    job = Job(command, proc.returncode, seconds, timeout_s, agent or "")
    for stream in ("stdout", "stderr"):
        for log in logs.glob(f"**/attempt_*/*/{stream}.log"):
            local_rank = int(log.parent.name)  # one node: the local rank is the rank
            getattr(job, stream)[local_rank] = log.read_text(errors="replace")
    return job
