"""Where the batch changed inside the model, and why.

The loss sees a batch other than the model input's. The first call whose input carries the
wrong batch, and the line before it that made that batch, tell which case it is: a sequence
layer that read the batch as time (batch_first=False), a reshape that folded time steps,
positions or stacked layers into the batch, or a conv stack that left a map of scores where
one score per sample was expected. Each fix is checked on the recorded shapes.
"""

from __future__ import annotations

import linecache
from typing import Any

from torch import nn

from inspector.engine.diagnose.batchflow import explain_from_flow
from inspector.engine.diagnose.context import (
    _RESHAPE,
    Context,
    Explanation,
    dims_product_text,
    previous_sibling,
    product,
    reshape_line,
)
from inspector.engine.diagnose.inputs import named_inputs
from inspector.engine.records import Call, SourceLine, TensorInfo, first_tensor
from inspector.engine.records import format_shape as fmt


def explain_batch_change(ctx: Context, ex: Explanation, batch: int, wrong: int,
                         output: Any = None) -> bool:  # fmt: skip
    """Add what changed the batch from `batch` (the model input's) to `wrong` (the output's,
    `output` when the live tensor is at hand); False when the record does not say."""
    changed = _first_with_batch(ctx, wrong)
    if changed is not None:
        rnn = _seq_first_rnn(ctx, changed, batch, wrong)
        if rnn is not None:
            return _read_as_time(ctx, ex, rnn, batch, wrong)
    if output is not None and explain_from_flow(ctx, ex, output, batch, wrong):
        return True
    if changed is not None:
        return _folded(ctx, ex, changed, batch, wrong)
    return _map_flattened(ctx, ex, batch, wrong)


def _first_with_batch(ctx: Context, wrong: int) -> Call | None:
    for call in ctx.trace.calls[1:]:
        if call.parent is None:
            break  # past the model: the loss
        info = first_tensor(call.inputs)
        if info is not None and info.ndim >= 1 and info.shape[0] == wrong:
            return call
    return None


def _seq_first_rnn(ctx: Context, changed: Call, batch: int, wrong: int) -> Call | None:
    """An RNN with batch_first=False fed (batch, time, features): it reads time as batch."""
    for call in reversed(ctx.trace.calls[1 : changed.seq]):
        module = ctx.live_module(call.seq)
        info = first_tensor(call.inputs)
        if not isinstance(module, nn.RNNBase) or module.batch_first or info is None:
            continue
        if info.ndim == 3 and info.shape[0] == batch and info.shape[1] == wrong:
            return call
    return None


def _read_as_time(ctx: Context, ex: Explanation, rnn: Call, batch: int, wrong: int) -> bool:
    module = ctx.live_module(rnn.seq)
    info = first_tensor(rnn.inputs)
    out = first_tensor(rnn.outputs)
    if info is None or out is None:
        return False
    kind = type(module).__name__
    ex.details.append(
        f"{rnn.name} ({kind}, batch_first=False) reads {fmt(info.shape)} as (seq={batch}, "
        f"batch={wrong}, features={info.shape[2]}): the {wrong} time steps of each sequence "
        f"became the batch, and the {batch} sequences became time"
    )
    width = out.shape[-1]
    ex.fixes.append(
        f"nn.{kind}({module.input_size}, {module.hidden_size}, batch_first=True): the output "
        f"is then ({batch}, {wrong}, {width}) and out[:, -1] gives ({batch}, {width}), one row "
        "per sequence"
    )
    ex.fixes.append(
        f"or feed x.transpose(0, 1), ({wrong}, {batch}, {info.shape[2]}) as (seq, batch, features)"
    )
    if rnn.call_site is not None:
        ex.line = rnn.call_site
    return True


def _folded(ctx: Context, ex: Explanation, changed: Call, batch: int, wrong: int) -> bool:
    info = first_tensor(changed.inputs)
    if info is None:
        return False
    sibling = previous_sibling(ctx.trace, changed)
    before: tuple[int, ...] | None = None
    maker = None
    if info.view_of is not None:
        maker = ctx.trace.calls[info.view_of]
    elif sibling is not None:
        maker = sibling
    made = first_tensor(maker.outputs) if maker is not None else None
    if made is not None and made.numel == info.numel and made.shape[0] == batch:
        before = made.shape
    line = reshape_line(ctx.trace, maker, changed)
    if line is not None:
        ex.line = line
    at = f" at line {line.lineno}" if line is not None else ""
    if wrong % batch:
        ex.details.append(f"{changed.name} gets {fmt(info.shape)}: the batch became {wrong}{at}")
        return True
    k = wrong // batch
    feats = info.shape[1:]
    if (
        maker is not None
        and before is not None
        and len(before) == 3
        and before[-1] == info.shape[-1]
    ):
        steps = "time steps" if _is_sequence_layer(ctx, maker) else "positions"
        ex.details.append(
            f"the reshape{at} turns {maker.name}'s {fmt(before)} into {fmt(info.shape)}: the "
            f"{before[1]} {steps} of each sequence were folded into the batch, "
            f"{batch}*{before[1]} = {wrong} rows"
        )
        ex.fixes.append(
            f"keep one row per sequence: h[:, -1] (the last step) or h.mean(1) gives "
            f"({batch}, {before[2]})"
        )
        ex.fixes.append(
            f"or flatten per sequence: h.reshape({batch}, -1) gives ({batch}, "
            f"{before[1] * before[2]}) = {before[1]}*{before[2]}, and size the next layer for it"
        )
        return True
    if before is not None and len(before) >= 4:
        per = product(before[1:])
        ex.details.append(
            f"the reshape{at} turns {fmt(before)} into {fmt(info.shape)}: {batch}*{k} = {wrong} "
            "rows, features moved into the batch"
        )
        ex.fixes.append(
            f"flatten per sample: x.view(x.size(0), -1) gives ({batch}, {per}) = "
            f"{dims_product_text(before[1:])} features per sample, and size the next "
            f"layer for {per} inputs"
        )
        return True
    per = k * product(feats)
    ex.details.append(
        f"{changed.name} gets {fmt(info.shape)}: each of the {batch} samples became {k} rows"
        f"{at}, {batch}*{k} = {wrong}"
    )
    ex.fixes.append(
        f"keep the batch first: .reshape({batch}, -1) gives ({batch}, {per}) = "
        f"{k}*{dims_product_text(feats)} per sample, and size the next layer for {per} inputs"
    )
    ex.fixes.append(
        f"or reduce the {k} rows of each sample (a mean over that dim) before the reshape"
    )
    return True


def _is_sequence_layer(ctx: Context, call: Call | None) -> bool:
    module = ctx.live_module(call.seq) if call is not None else None
    return isinstance(module, (nn.RNNBase, nn.TransformerEncoder, nn.TransformerDecoder))


def _map_flattened(ctx: Context, ex: Explanation, batch: int, wrong: int) -> bool:
    """The output was flattened after the last layer: a map of k values per sample became
    k rows per sample."""
    if wrong % batch or not ctx.trace.calls:
        return False
    k = wrong // batch
    for call in reversed(ctx.trace.calls[1:]):
        out = first_tensor(call.outputs)
        if call.parent != 0 or out is None or out.ndim < 2 or out.shape[0] != batch:
            continue
        if product(out.shape[1:]) != k:
            return False
        kind = "map" if out.ndim >= 3 else "row"
        ex.details.append(
            f"{call.name} leaves a {kind} {fmt(out.shape)}: {dims_product_text(out.shape[1:])} "
            f"= {k} values per sample where one per sample was expected; flattening it "
            f"gives {batch}*{k} = {wrong}"
        )
        if out.ndim == 4:
            ex.fixes.append(
                f"reduce the map to one score per sample: .mean((2, 3)) (or "
                f"nn.AdaptiveAvgPool2d(1)) on {fmt(out.shape)} gives ({batch}, {out.shape[1]})"
                + (", then .view(-1)" if out.shape[1] == 1 else "")
            )
        ex.fixes.append(
            f"or x.view(x.size(0), -1) gives ({batch}, {k}); add nn.Linear({k}, 1) for one "
            "score per sample"
        )
        line = _reshape_after(call)
        if line is not None:
            ex.line = line
        return True
    return False


def _reshape_after(call: Call) -> SourceLine | None:
    """The reshape at or after `call`'s call site, in the same function."""
    site = call.call_site
    if site is None:
        return None
    for lineno in range(site.lineno, site.lineno + 30):
        text = linecache.getline(site.file, lineno)
        if not text or (lineno > site.lineno and text.lstrip().startswith("def ")):
            return None
        if _RESHAPE.search(text) or ".view(" in text:
            return SourceLine(site.file, lineno, text.rstrip("\n"), site.function)
    return None


def seq_first_input(ctx: Context, ex: Explanation, data: TensorInfo, target: Any) -> bool:
    """Token ids given as (seq, batch): the target's batch is the input's dim 1."""
    n = int(target.shape[0]) if getattr(target, "dim", lambda: 0)() >= 1 else None
    if n is None or data.ndim != 2 or not data.dtype.startswith(("int", "uint")):
        return False
    if data.shape[1] != n or data.shape[0] == n:
        return False
    inputs = named_inputs(ctx)
    name = inputs[0][0] if inputs else "the input"
    ex.details.append(
        f"{name} {fmt(data.shape)} looks seq-first (seq, batch): the target has {n} samples, "
        f"the input's dim 1; the model reads dim 0 ({data.shape[0]}) as the batch"
    )
    ex.fixes.append(f"{name}.T gives {fmt((n, data.shape[0]))}, (batch, seq)")
    return True
