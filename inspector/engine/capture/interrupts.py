"""A Ctrl+C held back while torch runs Python code from C++ (the dry run's modes)."""

from __future__ import annotations

import threading
from typing import Any


class DeferredInterrupts:
    """Ctrl+C held back while torch runs Python code from C++ (the dry run's fake tensor and
    torch function modes), where an exception thrown at a random moment aborts the process
    ("terminate called after throwing an instance of 'python_error'"). The interrupt is
    raised at the next safe point (`poll()`, called at module calls) or when the block ends.

    Only in the main thread, and only where Python's own handler is installed; elsewhere it
    changes nothing.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None

    def __enter__(self) -> DeferredInterrupts:
        import signal

        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending = True

    def poll(self) -> None:
        """Raise the held Ctrl+C now (a safe point: Python code outside any torch mode)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending:  # the user's Ctrl+C wins over whatever else is on its way out
            self.pending = False
            raise KeyboardInterrupt
