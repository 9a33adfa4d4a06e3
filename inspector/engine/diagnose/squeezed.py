"""A batch of one squeezed away: `x.squeeze()` with no dim drops every size-1 dim, the
batch's too when it holds one sample, so code that runs with a batch of 32 fails (or, worse,
runs) at inference with a batch of 1.

The failing layer's input is followed back (history.py) to a bare `.squeeze()` whose input
had a batch of 1 that its output lacks. The fix squeezes only the dim that was meant; each
candidate is run through the failing layer on meta tensors before it is offered.
"""

from __future__ import annotations

import linecache

import torch
from torch import nn

from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.dataflow_values import Tensor, layer_on_meta
from inspector.engine.diagnose.history import history
from inspector.engine.records import SourceLine, first_tensor
from inspector.engine.records import format_shape as fmt


def explain_squeezed_batch(ctx: Context) -> Explanation | None:
    root = ctx.trace.calls[0] if ctx.trace.calls else None
    data = first_tensor(root.inputs) if root is not None and root.inputs else None
    x = ctx.tensor_arg(0)
    if data is None or not data.shape or data.shape[0] != 1 or x is None:
        return None
    value = history(ctx, x)
    squeezed = _bare_squeeze(value) if value is not None else None
    if squeezed is None:
        return None
    step, before = squeezed.step, squeezed.sources[0].shape
    if step is None:
        return None
    name = ctx.name
    ex = Explanation(
        summary=f"{name} gets {fmt(tuple(x.shape))}: `{step.expr}` at line {step.lineno} "
        "dropped the batch dim",
        details=[
            f"squeeze() with no dim removes every size-1 dim of {fmt(before)}: with a batch "
            "of 1 the batch goes too, so the code runs with bigger batches and fails with one"
        ],
        code="squeezed-batch",
        line=SourceLine(step.file, step.lineno, _text(step.file, step.lineno), step.function),
    )
    for text, shape in _candidates(before):
        if _accepts(ctx.module, shape):
            ex.fixes.append(f"{text} gives {fmt(shape)}, which {name} takes")
    if not ex.fixes:
        ex.fixes.append("squeeze only the dim you mean (squeeze(-1), squeeze(1)), never the batch")
    return ex


def _bare_squeeze(value: Tensor) -> Tensor | None:
    for t in value.lineage():
        source = t.sources[0] if t.sources else None
        if source is None or t.step is None or not source.known:
            continue
        if (
            t.step.expr.endswith(".squeeze()")
            and source.shape[:1] == (1,)
            and (len(t.shape) < len(source.shape))
        ):
            return t
    return None


def _candidates(before: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    found: list[tuple[str, tuple[int, ...]]] = []
    for dim in range(len(before) - 1, 0, -1):
        if before[dim] == 1:
            kept = before[:dim] + before[dim + 1 :]
            found.append((f"squeeze({dim if dim != len(before) - 1 else -1}) instead", kept))
    found.append(("no squeeze at all", before))
    return found


def _accepts(module: object, shape: tuple[int, ...]) -> bool:
    if not isinstance(module, nn.Module):
        return False
    out = layer_on_meta(module, [torch.empty(shape, device="meta")], {})
    return isinstance(out, torch.Tensor)


def _text(file: str, lineno: int) -> str:
    return linecache.getline(file, lineno).rstrip("\n")
