"""The terminal, shared between the app and the program it debugs.

What the program prints from its own thread while the app draws is kept and written out
later, never dropped. Under `run SCRIPT` and set_trace()/attach(), continue hands the whole
terminal back: the app suspends until the program stops again (or ends), so the program's
prints and input are the user's while it runs free.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from textual.app import App, SuspendNotSupported
from textual.driver import Driver

from inspector.tui.thread_driver import ThreadDriver


@dataclass(frozen=True)
class Frontend:
    """How one entry point shares the terminal with the program."""

    name: str
    runs_free_suspended: bool = False  # continue suspends the app until the next stop
    exit_when_done: bool = False  # the program ended and nothing needs looking at: close
    detach_when_free: bool = False  # continue with no stop ahead detaches, as pdb's does
    driver: type[Driver] | None = None  # None: Textual's own for this platform


DEBUG = Frontend("debug")  # debug(), demo: the model runs in a worker, the app stays up
SCRIPT = Frontend("script", runs_free_suspended=True, exit_when_done=True)  # run SCRIPT
SESSION = Frontend(  # set_trace(), attach(): the app in a thread of its own
    "session", runs_free_suspended=True, detach_when_free=True, driver=ThreadDriver
)


class SharedTerminal(App[None]):
    """An app that can hand the terminal to the program it debugs and take it back."""

    def __init__(self, frontend: Frontend) -> None:
        super().__init__(driver_class=frontend.driver)
        self.frontend = frontend
        self.interrupted = False  # Ctrl+C: the program gets a KeyboardInterrupt
        self.arrived = threading.Event()  # an engine event came (set from its thread)
        self.closing = threading.Event()  # the program is ending (set from its thread)
        self.ended = False  # the pass (or the script) has ended
        self.output: list[tuple[str, bool]] = []  # what other threads printed while we drew
        self._output_lock = threading.Lock()
        self._ui_thread: int | None = None

    def on_mount(self) -> None:
        self._ui_thread = threading.get_ident()

    def run_free(self, resume: Callable[[], None], interrupt: Callable[[], None]) -> None:
        """Give the terminal to the program (`resume` lets it go on) until it stops again,
        ends, or is closed; then close too if it ended. Ctrl+C meanwhile: `interrupt`."""
        self.arrived.clear()
        resumed = False
        try:
            with self.suspend():
                self.flush_output()
                resume()  # the program runs only while the terminal is its own
                resumed = True
                self._wait_for_event(interrupt)
        except SuspendNotSupported:  # no terminal to hand back (headless): just wait
            if not resumed:
                resume()
            self._wait_for_event(interrupt)
        if self.ended or self.closing.is_set():
            self.exit()

    def _wait_for_event(self, interrupt: Callable[[], None]) -> None:
        try:
            while not (self.arrived.wait(0.1) or self.closing.is_set()):
                pass
        except KeyboardInterrupt:  # Ctrl+C while the program runs free: it stops there
            self.interrupted = True
            interrupt()

    # -- the program's output ---------------------------------------------------------------

    def _print(self, text: str, stderr: bool = False) -> None:
        # Textual captures stdout while it draws; what the model or script prints from its
        # own thread is kept and written out later (flush_output), never dropped.
        if self._ui_thread is not None and threading.get_ident() != self._ui_thread:
            with self._output_lock:
                self.output.append((text, stderr))
            return
        super()._print(text, stderr)

    def flush_output(self) -> None:
        """Write what other threads printed while the app drew, in order."""
        with self._output_lock:
            pending, self.output = self.output, []
        for text, stderr in pending:
            stream = sys.__stderr__ if stderr else sys.__stdout__
            if stream is not None:
                stream.write(text)
        if sys.__stdout__ is not None:
            sys.__stdout__.flush()
