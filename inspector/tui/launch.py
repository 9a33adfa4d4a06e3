"""`debug()` and `python -m inspector demo`: the app in the main thread, the model in a worker.

When the app exits (q, Ctrl+C, a crash), every blocked model thread is released: a quit
never leaves a script hung. `q` lets the rest of the pass run without stopping; Ctrl+C ends
it and reaches the caller as KeyboardInterrupt, after the hooks are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from inspector.engine.capture.values import DEFAULT_BUDGET
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.debugger import Finished
from inspector.tui.controller import DebuggerControl
from inspector.tui.factory import make_app

JOIN_TIMEOUT = 600.0


def run_app(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    breakpoints: Iterable[Breakpoint | str] = (),
    backward: bool = False,
) -> Finished:
    """Run the pass under the TUI; returns when the user quits and the pass has ended."""
    control = DebuggerControl.of(
        model, *args, breakpoints=breakpoints, loss_fn=loss_fn, target=target,
        backward=backward, keep_values=DEFAULT_BUDGET, **kwargs,
    )  # fmt: skip
    debugger = control.debugger
    app = make_app(control, title=type(model).__name__)
    try:
        app.run()
    finally:
        stepper = debugger.stepper
        if stepper is not None:
            stepper.release(abort=app.interrupted)
        debugger.join(JOIN_TIMEOUT)
        app.flush_output()
    if app.interrupted:
        raise KeyboardInterrupt
    if debugger.finished is None:
        raise RuntimeError("the model thread did not finish")
    return debugger.finished
