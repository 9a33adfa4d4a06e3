"""Explain a failed pass: which call, which line, which op, and what to change.

Families are tried in order; each reads the module's attributes and the recorded shapes
(never only the message: on meta tensors torch words errors differently). When none
recognises the failure, the finding still names the module, the line and the op.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from inspector.engine.diagnose import (
    checks,
    config_inputs,
    embeddings,
    layers,
    linear,
    losses,
    misaligned,
    ops,
    spatial,
    squeezed,
    tuples,
    unbatched,
)
from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.locate import FailedOp, failing_op, user_line
from inspector.engine.diagnose.operands import UNKNOWN, stand_in
from inspector.engine.diagnose.verify import check_fixes
from inspector.engine.records import Diagnosis, TensorInfo, exception_message, exception_text

if TYPE_CHECKING:
    from inspector.engine.capture.pass_record import Failure
    from inspector.engine.records import Trace

Family = Callable[[Context], "Explanation | None"]

FAMILIES: tuple[Family, ...] = (
    tuples.explain_tuple_input,
    squeezed.explain_squeezed_batch,
    unbatched.explain_unbatched_image,
    ops.explain_dtype_device,
    misaligned.explain_misaligned_input,
    config_inputs.explain_sequence_length,
    config_inputs.explain_pixel_values,
    losses.explain_loss,
    linear.explain_linear,
    layers.explain_conv,
    spatial.explain_spatial,
    layers.explain_batchnorm,
    layers.explain_layernorm,
    embeddings.explain_embedding,
    layers.explain_rnn,
    layers.explain_mha,
    ops.explain_reshape,
    ops.explain_matmul,
    ops.explain_cat,
    embeddings.explain_position_parameter,
    ops.explain_broadcast,
    ops.explain_dim_range,
    checks.explain_check,
)

# Time spent on the last explanation, for the benchmark.
last_duration_ms = 0.0


def explain_failure(
    trace: Trace,
    failure: Failure | None,
    error: BaseException,
    modules: list[Any] | None = None,
    lookup: Callable[[Any], Any] | None = None,
) -> Diagnosis:
    """The diagnosis of `error`, raised in the recorded call `failure` (None: outside any).

    `modules` are weak references to the live module of each call, `lookup` maps a live
    tensor to the TensorInfo it was recorded with (both optional: richer explanations).
    """
    global last_duration_ms
    started = time.perf_counter()
    exception = exception_text(error)
    line = user_line(error.__traceback__)
    if failure is None:
        return Diagnosis(
            kind="error", module="", summary=_first_line(error), line=line, exception=exception
        )
    call = trace.calls[failure.seq]
    outputs = _recorded_outputs(trace, failure.seq, modules or [])
    failed = failing_op(failure.exception, outputs)
    if failed is None and failure.exception is not error:
        failed = failing_op(error, outputs)
    ctx = Context(
        trace=trace,
        call=call,
        module=failure.module,
        args=failure.args,
        kwargs=failure.kwargs,
        op=failed,
        error=error,
        line=line,
        modules=modules or [],
        lookup=lookup,
    )
    explanation = _explain(ctx)
    if explanation is None:
        explanation = Explanation(summary=_first_line(error), code="unexplained")
    last_duration_ms = (time.perf_counter() - started) * 1e3
    return Diagnosis(
        kind="error",
        module=call.path if explanation.module is None else explanation.module,
        module_type=explanation.module_type or call.type,
        call=call.seq,
        summary=explanation.summary,
        line=explanation.line or line,
        op=failed.info() if failed is not None else None,
        details=tuple(explanation.details),
        fixes=tuple(explanation.fixes),
        code=explanation.code,
        exception=exception,
    )


def explain_context(
    trace: Trace,
    seq: int,
    module: Any,
    failed: FailedOp,
    error: BaseException,
    modules: list[Any] | None = None,
    lookup: Callable[[Any], Any] | None = None,
) -> Diagnosis:
    """The diagnosis of an op that failed in call `seq`'s own code, known without a replay."""
    call = trace.calls[seq]
    ctx = Context(trace, call, module, (), {}, failed, error, failed.line, modules or [], lookup)
    explanation = _explain(ctx) or Explanation(summary=_first_line(error), code="unexplained")
    return Diagnosis(
        kind="error",
        module=call.path if explanation.module is None else explanation.module,
        module_type=explanation.module_type or call.type,
        call=seq,
        summary=explanation.summary,
        line=explanation.line or failed.line,
        op=failed.info(),
        details=tuple(explanation.details),
        fixes=tuple(explanation.fixes),
        code=explanation.code,
        exception=exception_text(error),
    )


def _recorded_outputs(trace: Trace, seq: int, modules: list[Any]) -> Callable[[Any], Any]:
    """The output a child module of call `seq` returned in this pass, as a stand-in tensor
    (its recorded shape, dtype and device): the operand `self.up(x)` inside a failing
    `torch.cat([self.up(x), skip])`."""

    def output(module: Any) -> Any:
        for call in reversed(trace.calls):
            if call.parent != seq or call.status != "ok" or call.seq >= len(modules):
                continue
            if modules[call.seq]() is not module:
                continue
            info = call.outputs
            if isinstance(info, TensorInfo):
                dtype = getattr(torch, info.dtype, None)
                if isinstance(dtype, torch.dtype):
                    return stand_in(info.shape, dtype, torch.device(info.device))
            return UNKNOWN
        return UNKNOWN

    return output


def _explain(ctx: Context) -> Explanation | None:
    # The explainers read shapes of the live tensors: a subclass's own code never sees it.
    # torch's warnings about the shapes they try on meta tensors are theirs, not the user's.
    with torch._C.DisableTorchFunctionSubclass(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family in FAMILIES:
            try:
                found = family(ctx)
            except Exception:  # an explainer must never hide the user's error
                continue
            if found is not None:
                if found.replacements:
                    check_fixes(ctx, found)
                return found
    return None


def _first_line(error: BaseException) -> str:
    text = exception_message(error).strip().splitlines()
    return text[0] if text else type(error).__name__
