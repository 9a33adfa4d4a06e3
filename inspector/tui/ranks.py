"""Which rank of a torchrun job gets the terminal.

Every rank that torchrun starts inherits the same terminal: two debuggers drawing on one TTY
take keys from each other. One rank is interactive; the others run headless and write their
stops to a file of their own (`inspector-rank1.log`), so nothing of theirs draws over it.

Which one: `run --rank N` or INSPECTOR_RANK=N; by default the first rank that stops (a
breakpoint, a failure, the start of a step-through) takes the terminal and keeps it. The
claim is an exclusive lock on a file named after the job and the terminal: the ranks of one
job share a machine when they share a TTY, and the lock goes with the process, however it
ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO

ENV = "INSPECTOR_RANK"


def chosen_rank(option: int | None) -> int | None:
    """The rank picked for the terminal: `--rank`, else INSPECTOR_RANK, else None (the
    first to stop). A value that is not a number is a usage error."""
    if option is not None:
        return option
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{ENV}={text!r} is not a rank number") from None


def log_path(rank: int) -> str:
    """Where a rank without the terminal writes its stops: the working directory."""
    return f"inspector-rank{rank}.log"


class TerminalClaim:
    """The terminal of one job, claimed by the first rank to ask."""

    def __init__(self) -> None:
        job = "-".join(
            os.environ.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT")
        )
        try:
            tty = os.ttyname(0)
        except OSError:
            tty = "notty"
        name = f"torch-inspector-{os.getuid()}-{_safe(job)}-{_safe(tty)}.tty-lock"
        self.path = os.path.join(tempfile.gettempdir(), name)
        self._held: IO[bytes] | None = None

    def try_claim(self) -> bool:
        """True when this process holds the terminal now (it keeps it until it exits)."""
        if self._held is not None:
            return True
        import fcntl

        handle = open(self.path, "ab")  # noqa: SIM115 - held open for the process lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._held = handle
        return True

    def wait_free(self) -> bool:
        """Block until the rank that holds the terminal has ended (it keeps the claim for
        the rest of its life): what this rank prints then lands on the terminal after the
        other's debugger has left its screen, not inside it, where it would be lost.

        False when Ctrl+C ended the wait: this rank's script is over, so there is nothing
        left for the interrupt to stop, and the rank ends at once as its script did (not
        with a traceback of this wait)."""
        import fcntl

        with open(self.path, "ab") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            except KeyboardInterrupt:
                return False
        return True  # closing the file let the lock go

    def release(self) -> None:
        if self._held is not None:
            with contextlib.suppress(OSError):
                self._held.close()
            self._held = None


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[-80:]
