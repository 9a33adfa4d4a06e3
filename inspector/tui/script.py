"""`python -m inspector run SCRIPT`: the app in the main thread, the script in a worker.

While the script runs free (continue) the app is suspended, so the script's prints and the
terminal are the user's; while it is paused the app shows the pass. What the script prints
during a short step is kept and written out when the app suspends or exits: nothing is lost.
With post_mortem, the app opens only when something stops the script (a failure).

`q` closes the debugger and the script goes on without stopping, to its own end and exit
code (after a failure: its traceback and exit code 1); Ctrl+C stops it, as it would alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from inspector.engine.capture.values import ValueStore
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.script import ScriptFinished, ScriptRun
from inspector.reporting import warn_unmatched
from inspector.tui.controller import EventRelay, StepperControl
from inspector.tui.factory import make_app
from inspector.tui.terminal import SCRIPT

JOIN_TIMEOUT = 600.0


def run_script(
    path: str,
    argv: Iterable[str] = (),
    *,
    breakpoints: Iterable[Breakpoint | str] = (),
    post_mortem: bool = False,
    gradients: bool = False,
) -> int:
    """Run `path` under the inspector; returns the script's exit code."""
    events = EventRelay()
    run = ScriptRun(path, argv, breakpoints=breakpoints, post_mortem=post_mortem,
                    gradients=gradients, on_event=events)  # fmt: skip
    run.recorder.values = ValueStore()  # heat maps of the pass on screen
    if post_mortem:
        run.start()
        try:
            first = events.first()  # the script runs in the foreground until it stops
        except KeyboardInterrupt:
            return _report_end(_finish(run, interrupted=True), run.breakpoints)
        if isinstance(first, ScriptFinished):
            run.join(JOIN_TIMEOUT)
            return _report_end(first, run.breakpoints)
    control = StepperControl(
        run.stepper, run.recorder, events, start=None if post_mortem else run.start,
        interrupt=run.interrupt,
    )  # fmt: skip
    app = make_app(control, title=run.path, frontend=SCRIPT)
    try:
        app.run()
    finally:
        # q (or the app ending any other way) lets the script go on; Ctrl+C stops it.
        run.stepper.release(abort=app.interrupted)
        app.flush_output()
    return _report_end(_finish(run, interrupted=app.interrupted), run.breakpoints)


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


def _report_end(finished: ScriptFinished | None, breakpoints: Iterable[Breakpoint] = ()) -> int:
    if finished is None:
        print("torch-inspector: the script did not finish", file=sys.stderr)
        return 1
    if finished.traceback:
        sys.stderr.write(finished.traceback)
    if not finished.quit:
        warn_unmatched(breakpoints, finished.calls)
    if finished.quit:
        print("torch-inspector: the script was interrupted from the debugger", file=sys.stderr)
    return finished.exit_code
