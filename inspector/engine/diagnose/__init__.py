"""Findings over a recorded pass: the error explained, then warnings about silent bugs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.diagnose.anomalies import dead_and_constant, nan_origin
from inspector.engine.diagnose.errors import explain_failure
from inspector.engine.diagnose.silent import silent_findings
from inspector.engine.records import Diagnosis

if TYPE_CHECKING:
    from inspector.engine.recorder import Recorder
    from inspector.engine.trace import Trace

__all__ = ["collect_findings", "explain_failure"]


def collect_findings(trace: Trace, recorder: Recorder) -> list[Diagnosis]:
    """The error's diagnosis first (if the pass failed), then warnings."""
    findings: list[Diagnosis] = []
    if trace.error is not None:
        failure = recorder.failure_for(trace.error)
        findings.append(
            explain_failure(trace, failure, trace.error, recorder.modules, recorder.lookup)
        )
    else:
        findings.extend(silent_findings(trace, recorder.modules))
    findings.extend(nan_origin(trace))
    findings.extend(dead_and_constant(trace))
    return findings
