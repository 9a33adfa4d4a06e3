"""An input that does not line up with the others: a mask of another length, labels shorter
than the inputs, a batch of labels for another batch.

The culprit is named with its shape, the shape the model expects and where that comes from
(the sequence input's shape), also when the raise happens deep inside a library's code: the
error's numbers are matched to the input's own dims, so the input named is the one the
failing op actually saw.
"""

from __future__ import annotations

import re

from inspector.engine.diagnose.config_inputs import numbers_seen
from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.inputs import config_of, named_inputs, sequence_input
from inspector.engine.records import TensorInfo
from inspector.engine.records import format_shape as fmt

_ROLE = re.compile(r"mask|label|target|token_type|segment|position_ids")


def explain_misaligned_input(ctx: Context) -> Explanation | None:
    seq = sequence_input(ctx)
    if seq is None:
        return None
    ref_name, ref = seq
    if not (ref.dtype.startswith(("int", "uint")) or ref.ndim == 3):
        return None  # not a sequence of tokens: (batch, features) rows have no token axis
    seen = numbers_seen(ctx)
    for name, info in named_inputs(ctx):
        if name == ref_name or info.ndim == 0 or not _ROLE.search(name):
            continue
        expected = _expected(name, info, ref)
        if expected is None or info.shape == expected:
            continue
        own = [d for d in info.shape if d not in ref.shape]
        if not (any(d in seen for d in own) or info.numel in seen):
            continue
        return _explain(ctx, name, info, ref_name, ref, expected)
    return None


def _expected(name: str, info: TensorInfo, ref: TensorInfo) -> tuple[int, ...] | None:
    """The shape this input must have next to the sequence input `ref`."""
    batch, length = ref.shape[0], ref.shape[1]
    if "label" in name or "target" in name:
        if info.ndim == 1:
            return (batch,)  # one label per sequence
        return (batch, length) if info.ndim == 2 else None
    if info.ndim == 2:
        return (batch, length)
    return None


def _explain(
    ctx: Context,
    name: str,
    info: TensorInfo,
    ref_name: str,
    ref: TensorInfo,
    expected: tuple[int, ...],
) -> Explanation:
    per = "one per sequence" if len(expected) == 1 else "one entry per token"
    ex = Explanation(
        summary=f"{name} {fmt(info.shape)} does not match {ref_name} {fmt(ref.shape)}: the "
        f"model expects {name} to be {fmt(expected)} ({per} of {ref_name})",
        code="input-misaligned",
    )
    where = ctx.call.path or "the model"
    ex.details.append(f"{where} failed on the numbers of {name}: {ctx.message.strip()[:120]}")
    if info.shape[0] != expected[0]:
        ex.details.append(f"{name} has a batch of {info.shape[0]}, {ref_name} of {expected[0]}")
        ex.fixes.append(
            f"build {name} from the same batch as {ref_name}: {fmt(expected)}, not "
            f"{fmt(info.shape)}"
        )
        return ex
    if len(expected) == 2 and info.ndim == 2:
        short = expected[1] - info.shape[1]
        ex.details.append(
            f"{name} covers {info.shape[1]} of the {expected[1]} tokens"
            if short > 0
            else f"{name} has {info.shape[1]} tokens, {ref_name} {expected[1]}"
        )
        if ("label" in name or "target" in name) and config_of(ctx) is not None and short > 0:
            ex.fixes.append(
                f"pass labels with the shape of {ref_name} {fmt(expected)}: the model shifts "
                f"them itself (labels = {ref_name}.clone() for a causal LM; -100 where no "
                "loss is wanted)"
            )
        else:
            ex.fixes.append(
                f"pad or truncate {name} and {ref_name} together to one length: {name} must "
                f"be {fmt(expected)}"
            )
    return ex
