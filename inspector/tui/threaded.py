"""The UI for `set_trace()` and `attach()`: one app in a background thread.

The model runs in the user's own main thread, which the stepper blocks at each pause. The
app lives in a thread of its own (ThreadDriver: no signal handlers off the main thread).
Continue with breakpoints left suspends the app, so the user's prints and terminal come
back, and releases the main thread only inside the suspend; continue with none left, or q,
detaches the session and closes the app. Ctrl+C raises KeyboardInterrupt in the user's code.
"""

from __future__ import annotations

import atexit
import threading

from textual.message import Message

from inspector.engine.session import Session
from inspector.engine.stepper import Pause
from inspector.tui.app import InspectorApp
from inspector.tui.launch import StepperControl
from inspector.tui.thread_driver import ThreadDriver

START_TIMEOUT = 30.0
JOIN_TIMEOUT = 10.0


class Close(Message):
    """Sent from another thread: the program is ending, close the app."""


class SessionApp(InspectorApp):
    """The inspector over a session in another thread."""

    def __init__(self, session: Session, ready: threading.Event) -> None:
        super().__init__(StepperControl(session.stepper, session.recorder), title="session")
        self.driver_class = ThreadDriver
        self.session = session
        self.arrived = threading.Event()
        self.closing = threading.Event()
        self.on_ready = ready.set

    def post_event(self, event: object) -> None:
        self.arrived.set()
        super().post_event(event)  # type: ignore[arg-type]

    def action_step(self, kind: str) -> None:
        if kind != "continue" or self.pause is None:
            super().action_step(kind)
            return
        stepper = self.session.stepper
        if not stepper.breakpoints and stepper.pass_goal is None:
            self.action_quit_session()  # nothing left to stop at: pdb detaches too
            return
        self.arrived.clear()
        with self.suspend():
            self.flush_output()
            super().action_step(kind)  # the main thread runs only while we are suspended
            while not (self.arrived.wait(0.1) or self.closing.is_set()):
                pass
        if self.closing.is_set():
            self.exit()

    def on_close(self, message: Close) -> None:
        self.exit()

    def action_quit(self) -> None:  # type: ignore[override]
        self.action_quit_session()

    def action_quit_session(self) -> None:
        # The user's thread is released once the app has given the terminal back
        # (ThreadedUI._run): what it prints must not land on the app's screen.
        self.exit()

    def action_interrupt(self) -> None:
        self.interrupted = True
        self.exit()


class ThreadedUI:
    """Starts the app in its thread at the first pause and feeds it every later one."""

    def __init__(self, session_factory: type[Session] = Session) -> None:
        self.app: SessionApp | None = None
        self.thread: threading.Thread | None = None
        self.session: Session | None = None
        self._ready = threading.Event()
        atexit.register(self.close)

    def show(self, pause: Pause) -> None:
        """Called in the model's thread at each pause (which then blocks in the stepper)."""
        running = self.app is not None and self.thread is not None and self.thread.is_alive()
        if not running and not self._start():
            assert self.session is not None
            self.session.detach()  # no UI: never leave the user's thread blocked
            return
        assert self.app is not None
        self.app.post_event(pause)

    def _start(self) -> bool:
        assert self.session is not None
        self._ready.clear()
        self.app = SessionApp(self.session, self._ready)
        self.thread = threading.Thread(target=self._run, name="inspector-ui", daemon=True)
        self.thread.start()
        return self._ready.wait(START_TIMEOUT)

    def _run(self) -> None:
        app = self.app
        assert app is not None and self.session is not None
        try:
            app.run()
        finally:
            # Whatever ended the app, the user's thread goes on, now that the terminal is back.
            self.session.recorder.detach()
            if app.interrupted:
                self.session.stepper.command("interrupt")  # KeyboardInterrupt in user code
            else:
                self.session.stepper.release()
            app.flush_output()

    def close(self) -> None:
        """At exit: end the app and give the terminal back."""
        if self.app is not None and self.thread is not None and self.thread.is_alive():
            self.app.closing.set()
            self.app.post_message(Close())  # post_message is the thread-safe door
            self.thread.join(JOIN_TIMEOUT)
