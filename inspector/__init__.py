"""torch-inspector: a terminal debugger for PyTorch models.

    import inspector
    t = inspector.trace(model, x)          # every module call, shapes and statistics
    print(t.diagnosis)                     # the error explained, with the fix in numbers
    inspector.report(model, x)             # the same as a rich table in the terminal

Only the engine (torch + stdlib) is imported here; rich and Textual load on first use.
"""

from __future__ import annotations

from typing import Any

from inspector.engine import (
    Call,
    Diagnosis,
    InspectorWarning,
    OpInfo,
    SourceLine,
    Stats,
    Struct,
    TensorInfo,
    Trace,
    trace,
)
from inspector.engine.api import check, diagnose, explain

__version__ = "0.1.0"

__all__ = [
    "Call",
    "Diagnosis",
    "InspectorWarning",
    "OpInfo",
    "SourceLine",
    "Stats",
    "Struct",
    "TensorInfo",
    "Trace",
    "check",
    "diagnose",
    "explain",
    "report",
    "trace",
]


def report(model: Any, *args: Any, **kwargs: Any) -> Trace:
    """Trace `model(*args, **kwargs)` and print the call table and findings to the terminal.

    Accepts the keyword arguments of `trace` (loss_fn, target, stats). Returns the Trace.
    """
    from inspector.report import print_report

    return print_report(model, *args, **kwargs)
