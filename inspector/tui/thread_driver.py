"""A Linux terminal driver for a Textual app that runs off the main thread.

`inspector.set_trace()` stops the user's own main thread inside a module hook, so the UI must
live in another thread. Python lets only the main thread install signal handlers, and
Textual's LinuxDriver installs several (SIGTSTP, SIGCONT, SIGWINCH...). This driver skips
those calls when they come from another thread and polls the terminal size instead of
waiting for SIGWINCH. On the main thread the stock behaviour is unchanged.

Depends on textual.drivers.linux_driver's internals: textual's minor version is pinned.
"""

from __future__ import annotations

import os
import signal as _signal
import threading
from typing import Any

from textual import events
from textual.drivers import linux_driver
from textual.drivers.linux_driver import LinuxDriver
from textual.geometry import Size

POLL_S = 0.25


class _MainThreadSignals:
    """Stands in for the `signal` module inside linux_driver: handlers only on the main thread."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def signal(self, signum: int, handler: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            return self._module.signal(signum, handler)
        return self._module.SIG_DFL

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _install() -> None:
    if not isinstance(linux_driver.signal, _MainThreadSignals):
        linux_driver.signal = _MainThreadSignals(_signal)  # type: ignore[assignment]


class ThreadDriver(LinuxDriver):
    """LinuxDriver that works in a background thread; the terminal size is polled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _install()
        super().__init__(*args, **kwargs)
        self._poll_stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start_application_mode(self) -> None:
        super().start_application_mode()
        if threading.current_thread() is not threading.main_thread():
            self._poll_stop.clear()
            self._poller = threading.Thread(
                target=self._poll_size, name="inspector-resize", daemon=True
            )
            self._poller.start()

    def stop_application_mode(self) -> None:
        self._poll_stop.set()
        super().stop_application_mode()

    def _poll_size(self) -> None:
        last = self._get_terminal_size()
        while not self._poll_stop.wait(POLL_S):
            try:
                size = self._get_terminal_size()
            except OSError:
                return
            if size != last:
                last = size
                textual_size = Size(*size)
                self._app.post_message(events.Resize(textual_size, textual_size))


def terminal_ok() -> bool:
    """A terminal the driver can use: a TTY on stdin and stdout."""
    try:
        return os.isatty(0) and os.isatty(1)
    except OSError:
        return False
