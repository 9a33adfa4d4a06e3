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

from inspector.engine.control.session import Session
from inspector.engine.control.stepper import Pause
from inspector.tui.app import InspectorApp
from inspector.tui.controller import EventRelay, StepperControl
from inspector.tui.factory import make_app
from inspector.tui.messages import CloseRequest
from inspector.tui.terminal import SESSION

START_TIMEOUT = 30.0
JOIN_TIMEOUT = 10.0


class ThreadedUI:
    """Starts the app in its thread at the first pause and feeds it every later one."""

    def __init__(self, session_factory: type[Session] = Session) -> None:
        self.app: InspectorApp | None = None
        self.thread: threading.Thread | None = None
        self.session: Session | None = None
        self.events = EventRelay()
        self._ready = threading.Event()
        atexit.register(self.close)

    def show(self, pause: Pause) -> None:
        """Called in the model's thread at each pause (which then blocks in the stepper)."""
        running = self.app is not None and self.thread is not None and self.thread.is_alive()
        if not running and not self._start():
            assert self.session is not None
            self.session.detach()  # no UI: never leave the user's thread blocked
            return
        self.events(pause)

    def _start(self) -> bool:
        assert self.session is not None
        self._ready.clear()
        self.events = EventRelay()  # a new app: a new door
        control = StepperControl(
            self.session.stepper, self.session.recorder, self.events, start=self._ready.set
        )
        self.app = make_app(control, title="session", frontend=SESSION)
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
            self.app.post_message(CloseRequest())  # post_message is the thread-safe door
            self.thread.join(JOIN_TIMEOUT)
