"""nn.Linear given the wrong number of features.

A Linear on a 2-D input needs in_features equal to the features per sample, derived from the
layer that made them. On a 3-D+ input it acts per position (a tagger's head, an LM head, a
transformer MLP): the fix keeps the positions, nn.Linear(D, out). Flattening is offered only
when the layer was clearly sized for a flattened sample (in_features is the product of the
non-batch dims) or the input is a conv feature map; a conv's (N, C, L) output whose C is
in_features needs its channels moved last.
"""

from __future__ import annotations

import linecache
import math
from typing import Any

from torch import nn

from inspector.engine.diagnose.context import (
    Context,
    Explanation,
    dims_product_text,
    is_model_input,
    producer_call,
    product,
)
from inspector.engine.diagnose.history import history
from inspector.engine.diagnose.inputs import config_value
from inspector.engine.diagnose.losses import shape_maker
from inspector.engine.records import Call, SourceLine, TensorInfo, first_tensor
from inspector.engine.records import format_shape as fmt


def explain_linear(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.Linear) or x is None or x.dim() == 0:
        return None
    in_f, out_f, name = m.in_features, m.out_features, ctx.name
    k = x.shape[-1]
    if k == in_f:
        return None
    shape = tuple(x.shape)
    info = ctx.input_info(0)
    ex = Explanation(
        summary=f"{name} expects {in_f} input features but its input {fmt(shape)} has {k}",
        code="linear-in-features",
    )
    if x.dim() == 2 and _batch_in_the_view(ctx, ex, x, in_f):
        return ex
    base = producer_call(ctx.trace, info)
    ex.details.append(f"{k} comes from {ctx.origin(info)}{_width_reason(ctx, base, k)}")
    if x.dim() > 2:
        return _linear_nd(ctx, ex, shape, base)
    ex.replace_layer(
        f"{name} = nn.Linear({k}, {out_f}){_per_sample_text(ctx, base, info, k)}", m, in_features=k
    )
    if (
        base is not None
        and base.type == "Linear"
        and info is not None
        and info.producer is not None
    ):
        ex.fixes.append(f"or make {base.name} produce {in_f} features (out_features={in_f})")
    elif base is None and is_model_input(ctx.trace, info, ctx.call):
        ex.fixes.append(
            f"or, if {name} is right (in_features={in_f}), the data is wrong: the model's "
            f"input {fmt(shape)} should have {in_f} features per sample"
        )
    return ex


def _batch_in_the_view(ctx: Context, ex: Explanation, x: Any, in_f: int) -> bool:
    """A view that fixed the number of rows (`x.view(32, -1)`) where the batch was meant: the
    tensor before it had the model's batch and exactly the features the layer expects per
    sample, so the view, not the layer, is wrong."""
    value = history(ctx, x)
    root = ctx.trace.calls[0] if ctx.trace.calls else None
    data = first_tensor(root.inputs) if root is not None and root.inputs else None
    if value is None or data is None or not data.shape:
        return False
    batch = data.shape[0]
    for t in value.lineage():
        source = t.sources[0] if t.sources else None
        if source is None or t.step is None or not t.view or not source.known:
            continue
        before = source.shape
        if len(before) >= 2 and before[0] == batch and product(before[1:]) == in_f:
            if t.shape[0] == batch:
                return False
            step = t.step
            ex.line = SourceLine(step.file, step.lineno, _text(step), step.function)
            ex.details.append(
                f"`{step.expr}` at line {step.lineno} turns {fmt(before)} into {fmt(t.shape)}: "
                f"{t.shape[0]} rows where the batch has {batch} samples of "
                f"{dims_product_text(before[1:])} = {in_f} features, the {in_f} {ctx.name} "
                "expects"
            )
            ex.fixes.append(
                f"keep the batch: x.view(x.size(0), -1) gives ({batch}, {in_f}) (a fixed row "
                "count breaks on any other batch size, such as a smaller last batch)"
            )
            ex.code = "batch-in-view"
            return True
    return False


def _text(step: Any) -> str:
    return linecache.getline(step.file, step.lineno).rstrip("\n")


_SPATIAL = ("Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "BatchNorm2d",
            "BatchNorm3d", "Upsample", "ConvTranspose")  # fmt: skip


def _linear_nd(
    ctx: Context, ex: Explanation, shape: tuple[int, ...], base: Call | None
) -> Explanation:
    """A Linear on a 3-D+ input: per position, unless the layer was sized for a flattened
    sample (its in_features is the product of the non-batch dims) or the input is a conv map."""
    m = ctx.module
    in_f, out_f, name, k = m.in_features, m.out_features, ctx.name, shape[-1]
    per_sample = product(shape[1:])
    if per_sample == in_f:
        ex.details.append(
            f"{name} is sized for a whole sample, {dims_product_text(shape[1:])} = {in_f} "
            "features: the input was meant to be flattened"
        )
        ex.fixes.append(
            f"flatten first: x = x.flatten(1) gives {fmt((shape[0], in_f))}, the {in_f} "
            f"features {name} expects"
        )
        return ex
    inner = [d for d in range(1, len(shape) - 1) if shape[d] == in_f]
    if len(shape) == 3 and inner:
        moved = (shape[0], shape[2], shape[1])
        ex.details.append(
            f"dim 1 holds the {in_f} features {name} expects ((N, C, L) from a conv); "
            "nn.Linear reads the last dim"
        )
        ex.fixes.append(
            f"move the features last: x.transpose(1, 2) gives {fmt(moved)}, and {name} "
            f"then gives {fmt((*moved[:-1], out_f))}"
        )
        return ex
    made = shape_maker(ctx.trace, ctx.input_info(0))
    made_out = first_tensor(made.outputs) if made is not None else None
    if (
        len(shape) >= 4
        and made is not None
        and made.type.startswith(_SPATIAL)
        and made_out is not None
        and made_out.shape == shape  # a channels-first map, not one permuted channels-last
    ):
        ex.details.append(
            f"nn.Linear acts on the last dim only ({k}); a {len(shape)}-D input keeps "
            f"{fmt(shape[:-1])} as batch dims"
        )
        ex.fixes.append(
            f"flatten first (x.flatten(1) gives {per_sample} = "
            f"{dims_product_text(shape[1:])} features per sample) and set "
            f"{name} = nn.Linear({per_sample}, {out_f})"
        )
        return ex
    positions = dims_product_text(shape[1:-1])
    ex.details.append(
        f"a Linear on {fmt(shape)} works per position: each of the {positions} positions of "
        f"each sample has {k} features"
    )
    ex.fixes.append(
        f"{name} = nn.Linear({k}, {out_f}) keeps the positions: it gives "
        f"{fmt((*shape[:-1], out_f))}"
    )
    if base is not None and base.type == "Linear":
        ex.fixes.append(f"or make {base.name} produce {in_f} features (out_features={in_f})")
    return ex


def _width_reason(ctx: Context, base: Call | None, k: int) -> str:
    """Why the producer makes `k` features, when its attributes say so."""
    module = ctx.live_module(base.seq) if base is not None else None
    if isinstance(module, nn.RNNBase) and module.bidirectional and 2 * module.hidden_size == k:
        return f": 2*{module.hidden_size} = {k} (bidirectional, hidden_size={module.hidden_size})"
    if isinstance(module, nn.RNNBase) and module.hidden_size == k:
        return " (its hidden_size)"
    return _config_width(ctx, base, k)


_WIDTHS = ("hidden_size", "d_model", "n_embd", "dim", "embed_dim")


def _config_width(ctx: Context, base: Call | None, k: int) -> str:
    """` (bert's config.hidden_size=32)`: the width set by the config of the outermost model
    that made the tensor, found by walking up from its producer."""
    seq = base.seq if base is not None else None
    found = ""
    while seq is not None:
        module = ctx.live_module(seq)
        config = vars(module).get("config") if isinstance(module, nn.Module) else None
        if config is not None and hasattr(type(config), "to_dict"):
            attr = next((a for a in _WIDTHS if config_value(config, a) == k), None)
            if attr is not None:
                found = f" ({ctx.trace.calls[seq].name}'s config.{attr}={k})"
        seq = ctx.trace.calls[seq].parent
    return found


def _per_sample_text(ctx: Context, base: Call | None, info: TensorInfo | None, k: int) -> str:
    """How the `k` features per sample were made, when that adds to the number itself."""
    if base is not None and info is not None and info.view_of is not None:
        out = first_tensor(base.outputs)
        if out is not None and out.ndim > 2 and product(out.shape[1:]) == k:
            return (
                f": after {base.name} the tensor is {fmt(out.shape)}, "
                f"{dims_product_text(out.shape[1:])} = {k} features per sample"
            )
    if base is None and info is not None:
        pooled = _pooled_map(ctx, k)
        if pooled:
            return pooled
        root = first_tensor(ctx.trace.calls[0].inputs) if ctx.trace.calls else None
        if root is not None and root.ndim > 2 and product(root.shape[1:]) == k:
            return f": {dims_product_text(root.shape[1:])} = {k}, the model input flattened"
    return ""


def _pooled_map(ctx: Context, k: int) -> str:
    """`20*4*4 = 320 after conv2 (its 8x8 map pooled to 4x4 in forward)`."""
    for call in reversed(ctx.trace.calls[: ctx.call.seq]):
        out = first_tensor(call.outputs)
        if call.status != "ok" or out is None or out.ndim != 4:
            continue
        c, h = out.shape[1], out.shape[2]
        side = math.isqrt(k // c) if k % c == 0 else 0
        if side and side * side * c == k and side < h and out.shape[2] == out.shape[3]:
            return (
                f": {c}*{side}*{side} = {k} after {call.name} (its {h}x{h} map reduced to "
                f"{side}x{side} in forward)"
            )
        return ""
    return ""
