"""`python -m inspector run SCRIPT`: the app in the main thread, the script in a worker.

While the script runs free (continue) the app is suspended, so the script's prints and the
terminal are the user's; while it is paused the app shows the pass. What the script prints
during a short step is kept and written out when the app suspends or exits: nothing is lost.
With post_mortem, the app opens only when something stops the script (a failure).

`q` closes the debugger and the script goes on without stopping, to its own end and exit
code (after a failure: its traceback and exit code 1); Ctrl+C stops it, as it would alone.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable

from inspector.engine.debugger import Finished
from inspector.engine.script import ScriptFinished, ScriptRun
from inspector.engine.stepper import Breakpoint, Pause
from inspector.engine.trace import Trace
from inspector.engine.values import ValueStore
from inspector.tui.app import InspectorApp
from inspector.tui.launch import StepperControl

JOIN_TIMEOUT = 600.0


class ScriptApp(InspectorApp):
    """The inspector over a running script: continue hands the terminal back to it."""

    def __init__(self, run: ScriptRun) -> None:
        super().__init__(StepperControl(run.stepper, run.recorder), title=run.path)
        self.run_ = run
        self.arrived = threading.Event()

    def post_event(self, event: Pause | Finished) -> None:
        self.arrived.set()
        if isinstance(event, ScriptFinished):
            event = Finished(Trace(list(event.calls)), aborted=event.quit)
        super().post_event(event)

    def on_pass_finished(self, message: object) -> None:
        super().on_pass_finished(message)  # type: ignore[arg-type]
        if not self.findings:
            self.exit()  # the script is done and nothing needs looking at

    def action_step(self, kind: str) -> None:
        if kind != "continue" or self.pause is None:
            super().action_step(kind)
            return
        self.arrived.clear()
        super().action_step(kind)
        self._run_free()

    def _run_free(self) -> None:
        """Give the terminal to the script until it stops again or ends."""
        try:
            with self.suspend():
                self.flush_output()
                self._wait_for_event()
        except Exception:  # no terminal to hand back (headless): just wait
            self._wait_for_event()
        if self.run_.finished is not None:
            self.exit()

    def _wait_for_event(self) -> None:
        try:
            while not self.arrived.wait(0.1):
                pass
        except KeyboardInterrupt:  # Ctrl+C while the script runs free: it stops there
            self.interrupted = True
            self.run_.interrupt()


def run_script(
    path: str,
    argv: Iterable[str] = (),
    *,
    breakpoints: Iterable[Breakpoint | str] = (),
    post_mortem: bool = False,
    gradients: bool = False,
) -> int:
    """Run `path` under the inspector; returns the script's exit code."""
    events: queue.Queue[Pause | ScriptFinished] = queue.Queue()
    holder: dict[str, ScriptApp] = {}

    def deliver(event: Pause | ScriptFinished) -> None:
        app = holder.get("app")
        if app is None:
            events.put(event)
        else:
            app.post_event(event)  # type: ignore[arg-type]

    run = ScriptRun(path, argv, breakpoints=breakpoints, post_mortem=post_mortem,
                    gradients=gradients, on_event=deliver)  # fmt: skip
    run.recorder.values = ValueStore()  # heat maps of the pass on screen
    app = ScriptApp(run)
    first: Pause | ScriptFinished | None = None
    if post_mortem:
        run.start()
        try:
            first = _next_event(events)  # the script runs in the foreground until it stops
        except KeyboardInterrupt:
            return _report_end(_finish(run, interrupted=True))
        if isinstance(first, ScriptFinished):
            run.join(JOIN_TIMEOUT)
            return _report_end(first)
    holder["app"] = app
    if first is not None:
        app.on_ready = lambda: app.post_event(first)  # type: ignore[arg-type]
    else:
        app.on_ready = run.start
    try:
        app.run()
    finally:
        # q (or the app ending any other way) lets the script go on; Ctrl+C stops it.
        run.stepper.release(abort=app.interrupted)
        app.flush_output()
    return _report_end(_finish(run, interrupted=app.interrupted))


def _next_event(events: queue.Queue[Pause | ScriptFinished]) -> Pause | ScriptFinished:
    while True:  # in short waits: Ctrl+C reaches the main thread between them
        try:
            return events.get(timeout=0.1)
        except queue.Empty:
            pass


def _finish(run: ScriptRun, *, interrupted: bool = False) -> ScriptFinished | None:
    """Wait for the script to end on its own; Ctrl+C (now or meanwhile) interrupts it."""
    if interrupted:
        run.interrupt()
    try:
        while not run.wait(0.1):
            pass
    except KeyboardInterrupt:
        run.interrupt()
        run.wait(JOIN_TIMEOUT)
    return run.finished


def _report_end(finished: ScriptFinished | None) -> int:
    if finished is None:
        print("torch-inspector: the script did not finish", file=sys.stderr)
        return 1
    if finished.traceback:
        sys.stderr.write(finished.traceback)
    if finished.quit:
        print("torch-inspector: the script was interrupted from the debugger", file=sys.stderr)
    return finished.exit_code
