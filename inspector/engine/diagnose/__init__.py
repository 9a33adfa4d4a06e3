"""Findings over a recorded pass: the error explained, then warnings about silent bugs.

The order carries the rule of what the diagnosis is: the error first when the pass failed,
then the error-class warnings (a silent shape bug, a NaN: `ERROR_CLASS`), then the numeric
findings (activation scale, dead and saturated units, vanishing and exploding gradients),
which describe the state of the weights and are never the diagnosis on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.diagnose.anomalies import Thresholds, dead_and_constant, nan_origin
from inspector.engine.diagnose.errors import explain_failure
from inspector.engine.diagnose.gradflow import backward_failure, gradient_findings
from inspector.engine.diagnose.locate import user_line
from inspector.engine.diagnose.numerics import activation_scale, dead_units, saturation
from inspector.engine.diagnose.silent import silent_findings
from inspector.engine.records import ERROR_CLASS, Diagnosis, is_diagnosis

if TYPE_CHECKING:
    from inspector.engine.capture.recorder import Recorder
    from inspector.engine.records import Trace

__all__ = ["ERROR_CLASS", "Thresholds", "collect_findings", "explain_failure", "is_diagnosis"]


def collect_findings(
    trace: Trace,
    recorder: Recorder,
    limits: Thresholds | None = None,
    in_backward: bool = False,
) -> list[Diagnosis]:
    """The error's diagnosis first (if the pass failed), then the error-class warnings, then
    the numeric ones."""
    limits = limits if limits is not None else Thresholds()
    modules = recorder.modules
    findings: list[Diagnosis] = []
    if trace.error is not None and in_backward:
        findings.append(backward_failure(trace, trace.error, user_line(trace.error.__traceback__)))
        findings.extend(silent_findings(trace, modules))
    elif trace.error is not None:
        failure = recorder.failure_for(trace.error)
        findings.append(explain_failure(trace, failure, trace.error, modules, recorder.lookup))
    else:
        findings.extend(silent_findings(trace, modules))
    findings.extend(nan_origin(trace))
    findings.extend(dead_and_constant(trace, limits, modules))
    findings.extend(dead_units(trace, limits, modules))
    findings.extend(saturation(trace, limits))
    findings.extend(activation_scale(trace, limits, modules))
    findings.extend(gradient_findings(trace, limits, modules))
    # stable: errors, then error-class warnings, then the rest, each in the order found
    return sorted(findings, key=lambda f: (f.kind != "error", not is_diagnosis(f)))
