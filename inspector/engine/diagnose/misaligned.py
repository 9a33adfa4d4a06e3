"""An input that does not line up with the others: a mask of another length, labels shorter
than the inputs, a batch of labels for another batch.

The culprit is named with its shape, the shape the model expects and where that comes from
(the sequence input's shape), also when the raise happens deep inside a library's code: the
error's numbers are matched to the input's own dims, so the input named is the one the
failing op actually saw.
"""

from __future__ import annotations

import re

import torch

from inspector.engine.diagnose.config_inputs import numbers_seen
from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.inputs import config_of, expectation, named_inputs, sequence_input
from inspector.engine.diagnose.losses import LOSS_OPS
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
        if ("label" in name or "target" in name) and _per_sequence(ctx, ref):
            if info.ndim == 2 and info.shape[0] == ref.shape[0]:
                return _sequence_labels(ctx, name, info)
            expected = (ref.shape[0],)
        if expected is None or info.shape == expected:
            continue
        own = [d for d in info.shape if d not in ref.shape]
        if not (any(d in seen for d in own) or info.numel in seen):
            continue
        return _explain(ctx, name, info, ref_name, ref, expected)
    return None


def _per_sequence(ctx: Context, ref: TensorInfo) -> bool:
    """The failing loss scores one row per sequence (B, classes), not one per token."""
    if ctx.op is None or ctx.op.name not in LOSS_OPS:
        return False
    scores = next((a for a in ctx.op.args if isinstance(a, torch.Tensor)), None)
    return scores is not None and scores.dim() == 2 and scores.shape[0] == ref.shape[0]


def _sequence_labels(ctx: Context, name: str, info: TensorInfo) -> Explanation:
    """2-D labels for a model that classifies whole sequences: one label per sequence (class
    indices), or, for multi-label, one column per label; float labels are read as the
    latter by a Hugging Face model that infers its problem type."""
    scores = next(a for a in ctx.op.args if isinstance(a, torch.Tensor))  # type: ignore[union-attr]
    batch, classes = scores.shape
    config = config_of(ctx)
    expects = expectation(config, classes, ("num_labels",))
    floats = info.dtype.startswith(("float", "bfloat"))
    ex = Explanation(
        summary=f"{name} {fmt(info.shape)} does not fit a model that classifies whole "
        f"sequences into {classes} classes{expects}",
        code="input-misaligned",
    )
    if floats:
        ex.details.append(
            f"float {name} are read as multi-label targets, one 0/1 column per class: "
            f"{fmt((batch, classes))}"
        )
    ex.fixes.append(
        f"one class per sequence: {name}.squeeze(1).long() gives ({batch},), class indices "
        f"< {classes}"
        if info.shape[1] == 1
        else f"one class per sequence: class indices ({batch},), each < {classes}"
    )
    ex.fixes.append(f"or, for multi-label targets, {fmt((batch, classes))} floats of 0 and 1")
    return ex


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
