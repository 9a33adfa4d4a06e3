"""torch-inspector: a terminal debugger for PyTorch models.

    import inspector
    t = inspector.trace(model, x)          # every module call, shapes and statistics
    print(t.diagnosis)                     # the error explained, with the fix in numbers
    inspector.report(model, x)             # the same as a rich table in the terminal

Only the engine (torch + stdlib) is imported here; rich and Textual load on first use.
"""

from __future__ import annotations

import sys
from typing import Any

from inspector.engine import (
    Call,
    Diagnosis,
    Gradient,
    InspectorWarning,
    OpInfo,
    SourceLine,
    Stats,
    Struct,
    TensorInfo,
    Thresholds,
    Trace,
    Units,
    trace,
)
from inspector.engine.api import check, diagnose, explain
from inspector.engine.contrib import Contributions, contributions
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.debugger import Debugger
from inspector.engine.diagnose.checkpoints import check_state_dict
from inspector.entry import attach, set_trace
from inspector.terminal import interactive

__version__ = "0.1.0"

__all__ = [
    "Breakpoint",
    "Call",
    "Contributions",
    "Debugger",
    "Diagnosis",
    "Gradient",
    "InspectorWarning",
    "OpInfo",
    "SourceLine",
    "Stats",
    "Struct",
    "TensorInfo",
    "Thresholds",
    "Trace",
    "Units",
    "attach",
    "check",
    "check_state_dict",
    "contributions",
    "debug",
    "diagnose",
    "explain",
    "report",
    "set_trace",
    "trace",
]


def report(model: Any, *args: Any, **kwargs: Any) -> Trace:
    """Trace `model(*args, **kwargs)` and print the call table and findings to the terminal.

    Accepts the keyword arguments of `trace` (loss_fn, target, stats). Returns the Trace.
    """
    from inspector.reporting import print_report

    return print_report(model, *args, **kwargs)


def debug(
    model: Any,
    *args: Any,
    loss_fn: Any = None,
    target: Any = None,
    breakpoints: Any = (),
    backward: bool = False,
    **kwargs: Any,
) -> Any:
    """Open the debugger paused before the first module call of `model(*args, **kwargs)`.

    Keys are pdb's: s step into, n step over, r step out, c continue, q quit. Returns the
    model output, or re-raises the model's original exception after the user quits. Without
    a terminal (piped, CI) nothing waits for keys: the report is printed instead.

    Args:
        breakpoints: path globs ("decoder.*.attn"), module types ("Conv2d") or Breakpoint
            objects (with an `nth` call or a condition: "nan", "inf", "batch", "absmax>N",
            "dead", "saturated", "scale", "grad-nan", "grad-norm>N").
        backward: after the forward (and the loss), step on through the backward pass, call
            by call in reverse, with each call's gradient statistics.
    """
    from inspector.engine.capture.hooks import recording_everything

    if recording_everything():
        # Inside `run` or an attach()/set_trace() session: the debugger already open records
        # and stops on these calls; a second one would fight it for the terminal.
        output = model(*args, **kwargs)
        if loss_fn is not None:
            loss_fn(output, target)
        return output
    if not interactive():
        t = report(model, *args, loss_fn=loss_fn, target=target, backward=backward, **kwargs)
    else:
        from inspector.tui import run_app

        t = run_app(
            model, args, kwargs, loss_fn=loss_fn, target=target, breakpoints=breakpoints,
            backward=backward,
        ).trace  # fmt: skip
    if t.error is not None:
        raise t.error
    return t.output


# Inside IPython (Jupyter): the public objects display like the report, and debug() says what
# it does where no terminal can take keys. Outside IPython nothing more is imported.
if "IPython" in sys.modules:
    from inspector import notebook as _notebook

    if _notebook.register():
        debug = _notebook.explained(debug)
