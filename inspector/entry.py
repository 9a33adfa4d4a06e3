"""Breakpoint-style entry points: `set_trace()` (and `breakpoint()`), `attach()`.

    PYTHONBREAKPOINT=inspector.set_trace python train.py

Both run in the user's own thread; the UI runs beside it (inspector.tui.threaded). Without a
terminal nothing ever waits for a key: a session prints one line per stop and goes on, and
`set_trace()` (a `breakpoint()` left in a script that now runs in CI) hooks nothing at all.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from typing import Any

from torch import nn

from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.script import running_script_stepper
from inspector.engine.control.session import Session
from inspector.engine.control.stepper import Pause
from inspector.terminal import interactive

_active: Session | None = None


def attach(
    model: nn.Module | None = None,
    break_on: Iterable[Breakpoint | str] | Breakpoint | str = (),
    *,
    on_pass: int | None = None,
    stats: bool = True,
    gradients: bool = False,
) -> Session:
    """Hooks that stay across passes until `session.detach()` (or the `with` block ends).

    Args:
        model: the model to hook; None hooks every module call in the process.
        break_on: path globs, module types or Breakpoint objects to stop at.
        on_pass: stop at the start of this pass (1-based); a pass starts with each call of a
            root module.
        gradients: also record the gradients of each backward pass the loop runs (the
            stepper stops there too: "grad-nan" and "grad-norm>N" breakpoints).
    """
    return _start(
        model, break_on, on_pass=on_pass, stop_next=False, stats=stats, gradients=gradients
    )


_told = False


def set_trace() -> None:
    """Stop at the next module call, in the debugger. `breakpoint()` does the same with
    PYTHONBREAKPOINT=inspector.set_trace. Continue with no breakpoint set detaches. In a
    script that `python -m inspector run` runs, it stops in that debugger.

    Without a terminal there is nobody to step: the program goes on untouched (no hook is
    added; hooks with no end in sight would record every later call) and one line on stderr
    says so, once per process.
    """
    global _told

    hosting = running_script_stepper()
    if hosting is not None:  # under `python -m inspector run`: its debugger stops there
        hosting.stop_next()
        return
    if not interactive():
        if not _told:
            _told = True
            print(
                "torch-inspector: set_trace() needs a terminal; the program goes on. "
                "Without one, `with inspector.explain():` explains a failure and "
                "inspector.report(model, x) shows a pass.",
                file=sys.stderr,
            )
        return
    _start(None, (), on_pass=None, stop_next=True, stats=True)


def _start(
    model: nn.Module | None,
    break_on: Any,
    *,
    on_pass: int | None,
    stop_next: bool,
    stats: bool,
    gradients: bool = False,
) -> Session:
    global _active
    if _active is not None and _active.attached:
        _active.detach()  # one session at a time: the newest wins

    session: Session | None = None
    try:
        if interactive():
            from inspector.engine.capture.values import ValueStore
            from inspector.tui.threaded import ThreadedUI

            ui = ThreadedUI()
            session = Session(ui.show, model, break_on=break_on, on_pass=on_pass,
                              stop_next=stop_next, stats=stats, gradients=gradients)  # fmt: skip
            session.recorder.values = ValueStore()  # heat maps of the pass on screen
            ui.session = session
        else:
            session = Session(_log_pause, model, break_on=break_on, on_pass=on_pass,
                              stop_next=False, stats=stats, gradients=gradients)  # fmt: skip
            session.stepper.on_pause = functools.partial(_log_and_go, session)
        _active = session
        return session  # inside the try: an interrupt on the way out detaches too
    except BaseException:  # an interrupt before the caller holds the session: no hook stays
        if session is not None:
            session.detach()
        raise


def _log_pause(pause: Pause) -> None:
    print(f"torch-inspector: {pause.reason}: {pause.where} (pass {pause.pass_index + 1})",
          file=sys.stderr)  # fmt: skip
    if pause.diagnosis is not None:
        print(str(pause.diagnosis), file=sys.stderr)


def _log_and_go(session: Session, pause: Pause) -> None:
    _log_pause(pause)
    session.stepper.command("continue")
