"""Explain a failed pass: which call, which line, which op, and what to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.diagnose.locate import replay_failing_op, user_line
from inspector.engine.records import Diagnosis

if TYPE_CHECKING:
    from inspector.engine.recorder import Failure
    from inspector.engine.trace import Trace


def explain_failure(trace: Trace, failure: Failure | None, error: BaseException) -> Diagnosis:
    """The diagnosis of `error`, raised in the recorded call `failure` (None: outside any)."""
    exception = f"{type(error).__name__}: {error}"
    line = user_line(error.__traceback__)
    if failure is None:
        return Diagnosis(
            kind="error", module="", summary=_first_line(error), line=line, exception=exception
        )
    call = trace.calls[failure.seq]
    failed = replay_failing_op(failure.module, failure.args, failure.kwargs)
    return Diagnosis(
        kind="error",
        module=call.path,
        module_type=call.type,
        call=call.seq,
        summary=_first_line(error),
        line=line,
        op=failed.info() if failed is not None else None,
        exception=exception,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
