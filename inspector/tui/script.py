"""`python -m inspector run SCRIPT`: the app in the main thread, the script in a worker.

While the script runs free (continue) the app is suspended, so the script's prints and the
terminal are the user's; while it is paused the app shows the pass. What the script prints
during a short step is kept and written out when the app suspends or exits: nothing is lost.
With post_mortem, the app opens only when something stops the script (a failure).

`q` closes the debugger and the script goes on without stopping, to its own end and exit
code (after a failure: its traceback and exit code 1); Ctrl+C stops it, as it would alone.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable

from rich.console import Console

from inspector.engine.capture.values import ValueStore
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.script import ScriptFinished, ScriptRun, hang_view
from inspector.engine.control.stepper import Pause
from inspector.engine.distributed import rank_prefixed
from inspector.reporting import warn_unmatched
from inspector.tui.app import InspectorApp
from inspector.tui.controller import EventRelay, StepperControl
from inspector.tui.factory import make_app
from inspector.tui.ranks import TerminalClaim, log_path
from inspector.tui.terminal import SCRIPT

JOIN_TIMEOUT = 600.0


def run_script(
    path: str,
    argv: Iterable[str] = (),
    *,
    breakpoints: Iterable[Breakpoint | str] = (),
    post_mortem: bool = False,
    gradients: bool = False,
    claim: TerminalClaim | None = None,
) -> int:
    """Run `path` under the inspector; returns the script's exit code. With `claim` (a rank
    of a torchrun job that shares its terminal), the app opens only if this rank is the
    first to stop; otherwise its stops go to its log file and the script runs on."""
    events = EventRelay()
    run = ScriptRun(path, argv, breakpoints=breakpoints, post_mortem=post_mortem,
                    gradients=gradients, on_event=events)  # fmt: skip
    run.recorder.values = ValueStore()  # heat maps of the pass on screen
    shown: list[InspectorApp] = []  # the app, while it is up: SIGUSR1 says where in it

    def tell(text: str) -> None:
        if shown and shown[0].is_running:
            shown[0].call_from_thread(shown[0].notify, text.strip(), timeout=8)
        else:
            sys.stderr.write(rank_prefixed(text))

    with hang_view(run, tell):
        return _run_script(run, events, post_mortem or claim is not None, claim, shown)


def _run_script(
    run: ScriptRun,
    events: EventRelay,
    started: bool,
    claim: TerminalClaim | None,
    shown: list[InspectorApp],
) -> int:
    if started:
        run.start()
        try:
            first = events.first()  # the script runs in the foreground until it stops
        except KeyboardInterrupt:
            return _report_end(_finish(run, interrupted=True), run.breakpoints)
        if isinstance(first, ScriptFinished):
            run.join(JOIN_TIMEOUT)
            return _report_end(first, run.breakpoints)
        if claim is not None and not claim.try_claim():
            return _headless_rest(run, events, claim)
    control = StepperControl(
        run.stepper, run.recorder, events, start=None if started else run.start,
        interrupt=run.interrupt,
    )  # fmt: skip
    app = make_app(control, title=run.path, frontend=SCRIPT)
    shown.append(app)
    try:
        app.run()
    finally:
        # q (or the app ending any other way) lets the script go on; Ctrl+C stops it.
        run.stepper.release(abort=app.interrupted)
        app.flush_output()
    return _report_end(_finish(run, interrupted=app.interrupted), run.breakpoints)


def _headless_rest(run: ScriptRun, events: EventRelay, claim: TerminalClaim) -> int:
    """Another rank has the terminal: this one's stops (the one that came first included)
    are written to its log file, and it runs on as without a debugger. Where they are is
    said once the rank with the terminal has ended (its debugger's screen is gone then)."""
    from inspector.engine.distributed import launched_rank
    from inspector.reporting import log_stop

    rank = launched_rank()
    path = log_path(rank if rank is not None else 0)
    stops = 0
    with open(path, "a", encoding="utf-8") as log:
        console = Console(file=log, width=120, no_color=True, soft_wrap=False)

        def on_event(event: object) -> None:
            nonlocal stops
            if isinstance(event, Pause):
                stops += 1
                log_stop(console, event)
                log.flush()
                run.stepper.command("continue")  # nobody is there to press a key

        events.connect(on_event)
        finished = _finish(run)
    if stops:
        with contextlib.suppress(OSError):  # no lock to wait on: say it now
            claim.wait_free()
        print(rank_prefixed(f"torch-inspector: another rank has the terminal; {stops} stop(s) "
                            f"of this rank are in {path}\n"), end="", file=sys.stderr)  # fmt: skip
    return _report_end(finished, run.breakpoints)


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
        sys.stderr.write(
            rank_prefixed(finished.traceback)
        )  # torch's own `[rankN]: ` under torchrun
    if not finished.quit:
        warn_unmatched(breakpoints, finished.calls)
    if finished.quit:
        print("torch-inspector: the script was interrupted from the debugger", file=sys.stderr)
    return finished.exit_code
