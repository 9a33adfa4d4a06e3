"""Findings over a recorded pass: the error explained, then warnings about silent bugs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.diagnose.anomalies import Thresholds, dead_and_constant, nan_origin
from inspector.engine.diagnose.errors import explain_failure
from inspector.engine.diagnose.gradflow import backward_failure, gradient_findings
from inspector.engine.diagnose.locate import user_line
from inspector.engine.diagnose.numerics import activation_scale, dead_units, saturation
from inspector.engine.diagnose.silent import silent_findings
from inspector.engine.records import Diagnosis

if TYPE_CHECKING:
    from inspector.engine.capture.recorder import Recorder
    from inspector.engine.records import Trace

__all__ = ["Thresholds", "collect_findings", "explain_failure"]


def collect_findings(
    trace: Trace,
    recorder: Recorder,
    limits: Thresholds | None = None,
    in_backward: bool = False,
) -> list[Diagnosis]:
    """The error's diagnosis first (if the pass failed), then warnings."""
    limits = limits if limits is not None else Thresholds()
    findings: list[Diagnosis] = []
    if trace.error is not None and in_backward:
        findings.append(backward_failure(trace, trace.error, user_line(trace.error.__traceback__)))
        findings.extend(silent_findings(trace, recorder.modules))
    elif trace.error is not None:
        failure = recorder.failure_for(trace.error)
        findings.append(
            explain_failure(trace, failure, trace.error, recorder.modules, recorder.lookup)
        )
    else:
        findings.extend(silent_findings(trace, recorder.modules))
    findings.extend(nan_origin(trace))
    findings.extend(dead_and_constant(trace, limits))
    findings.extend(dead_units(trace, limits))
    findings.extend(saturation(trace, limits))
    findings.extend(activation_scale(trace, limits))
    findings.extend(gradient_findings(trace, limits))
    return findings
