"""Families explained from a layer's own attributes: Conv, norms, RNNs, MHA (Linear in
linear.py, Embedding in embeddings.py).

Each explainer compares what the module declares (in_features, in_channels, num_features,
normalized_shape, num_embeddings, input_size, embed_dim) with the live input, and computes
the fix from the recorded shapes. None means "not this family".
"""

from __future__ import annotations

import linecache
import math
from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.config_inputs import explain_conv_input, first_layer, input_rank
from inspector.engine.diagnose.context import Context, Explanation, is_model_input, producer_call
from inspector.engine.diagnose.history import history
from inspector.engine.diagnose.inputs import name_of, named_inputs
from inspector.engine.diagnose.losses import shape_maker
from inspector.engine.records import SourceLine, first_tensor
from inspector.engine.records import format_shape as fmt

_CONV_RANK = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}


def explain_conv(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or x is None:
        return None
    rank = _CONV_RANK[type(m)] if type(m) in _CONV_RANK else x.dim()
    name, kind = ctx.name, type(m).__name__
    c_in, c_out = m.in_channels, m.out_channels
    shape = tuple(x.shape)
    spatial = rank - 2
    layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[spatial]
    if x.dim() < rank - 1 or x.dim() > rank or (x.dim() == rank - 1 and spatial == 1):
        if len(shape) > rank and first_layer(ctx):
            found = input_rank(ctx, shape, rank)
            if found is not None:
                return found
        return _conv_rank(ctx, shape, rank, layout)
    if x.dim() == rank - 1:  # unbatched input
        shape = (1, *shape)
    channels = shape[1]
    if channels == c_in:
        return None  # channels fine: kernel/size problem, explained by the spatial family
    given = name_of(ctx, x)
    if given is not None or first_layer(ctx):
        found = explain_conv_input(ctx, x, given)
        if found is not None:
            return found
    ex = Explanation(
        summary=f"{name} expects {c_in} input channels but its input {fmt(tuple(x.shape))} "
        f"has {channels}",
        code="conv-in-channels",
    )
    if spatial == 2 and shape[-1] == c_in and not _channels_first_made(ctx, shape):
        ex.details.append(
            f"the input looks channels-last (N, H, W, C) = {fmt(shape)}; {kind} reads {layout}"
        )
        ex.fixes.append(
            f"x = x.permute(0, 3, 1, 2) gives {fmt((shape[0], shape[3], shape[1], shape[2]))} "
            f"with {c_in} channels"
        )
        return ex
    if spatial == 1 and shape[-1] == c_in and not _channels_first_made(ctx, shape):
        ex.details.append(
            f"the input is (batch, length, channels) = {fmt(shape)}: its {c_in} features are "
            f"last, and {kind} reads (N, C, L)"
        )
        ex.fixes.append(
            f"x.transpose(1, 2) gives {fmt((shape[0], shape[2], shape[1]))} before {name} "
            "(and back after it, if the next layer works per step)"
        )
        return ex
    ex.details.append(f"{channels} channels come from {ctx.origin(ctx.input_info(0))}")
    ex.replace_layer(
        f"{name} = nn.{kind}({channels}, {c_out}, ...) (in_channels={channels})",
        m,
        in_channels=channels,
    )
    if channels == 1 and c_in == 3:
        ex.fixes.append("or repeat grayscale images to 3 channels: x = x.repeat(1, 3, 1, 1)")
    base = producer_call(ctx.trace, ctx.input_info(0))
    if base is not None and base.type.startswith("Conv"):
        ex.fixes.append(f"or make {base.name} output {c_in} channels (out_channels={c_in})")
    return ex


def _conv_rank(ctx: Context, shape: tuple[int, ...], rank: int, layout: str) -> Explanation:
    m = ctx.module
    name, kind = ctx.name, type(m).__name__
    c_in = m.in_channels
    ex = Explanation(
        summary=f"{name} ({kind}) expects a {rank}-D input {layout} but got {fmt(shape)}",
        code="conv-input-rank",
    )
    n = shape[0] if shape else 1
    if rank == 3 and len(shape) == 2:
        ex.details.append(
            f"a 2-D input is read as one unbatched signal (C={shape[0]}, L={shape[1]}), "
            f"so its {shape[0]} rows count as channels"
        )
        ex.fixes.append(
            f"add the channel dim: x = x.unsqueeze(1) gives {fmt((n, 1, shape[1]))} (in_channels=1)"
        )
        if c_in != 1:
            ex.fixes.append(f"and set {name} = nn.Conv1d(1, {m.out_channels}, ...)")
        return ex
    if rank == 4 and len(shape) == 2:
        if _flattened_before(ctx, ex, shape, c_in):
            return ex
        per = shape[1]
        side = math.isqrt(per // c_in) if per % c_in == 0 else 0
        if side and side * side * c_in == per:
            ex.details.append(f"{per} = {c_in}*{side}*{side}: the images were flattened")
            ex.fixes.append(f"x = x.view(-1, {c_in}, {side}, {side}) before {name}")
        else:
            ex.fixes.append(f"reshape to (N, {c_in}, H, W) before {name}")
        return ex
    if len(shape) == rank - 2:
        ex.fixes.append(f"add batch and channel dims: x[None, None] gives {fmt((1, 1, *shape))}")
    else:
        ex.fixes.append(f"reshape the input to {layout} with C={c_in}")
    return ex


def _ids_with_a_trailing_one(ctx: Context, ex: Explanation, x: Any) -> bool:
    """Token ids shaped (B, T, 1): the embedding adds its features after the 1."""
    value = history(ctx, x)
    if value is None:
        return False
    for t in value.lineage():
        if not isinstance(t.module, nn.Embedding) or not t.sources:
            continue
        ids = t.sources[0]
        if not ids.known or len(ids.shape) < 3 or ids.shape[-1] != 1:
            return False
        name = ids.name or "ids"
        ex.details.append(
            f"{name} {fmt(ids.shape)} ends in a dim of 1, and the embedding adds its "
            f"{t.shape[-1]} features after it: {fmt(t.shape)}"
        )
        given = {n for n, _ in named_inputs(ctx)}
        text = f"{name}.squeeze(-1) gives {fmt(ids.shape[:-1])}, one id per position"
        if ids.step is None and name in given:
            ex.change_input(text, name, lambda t: t.squeeze(-1))
        else:
            ex.fixes.append(text)
        return True
    return False


def _flattened_before(ctx: Context, ex: Explanation, shape: tuple[int, ...], c_in: int) -> bool:
    """The conv's input was a (N, C, H, W) map until a flatten in forward: name that line."""
    value = history(ctx, ctx.tensor_arg(0))
    if value is None:
        return False
    for t in value.lineage():
        source = t.sources[0] if t.sources else None
        if source is None or t.step is None:
            continue
        if len(source.shape) == 4 and len(t.shape) == 2 and source.shape[1] == c_in:
            ex.line = SourceLine(t.step.file, t.step.lineno, _text(t.step), t.step.function)
            ex.details.append(
                f"`{t.step.expr}` at line {t.step.lineno} flattens the map {fmt(source.shape)} "
                f"into {fmt(t.shape)} before {ctx.name}, which needs the map"
            )
            ex.fixes.append(
                f"flatten after the conv layers, not before {ctx.name}: remove "
                f"`{t.step.expr}` there and flatten before the first Linear"
            )
            return True
    return False


def _text(step: Any) -> str:
    return linecache.getline(step.file, step.lineno).rstrip("\n")


def explain_batchnorm(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.modules.batchnorm._BatchNorm) or x is None or x.dim() < 2:
        return None
    channels, nf, name = x.shape[1], m.num_features, ctx.name
    if channels == nf:
        return None
    shape = tuple(x.shape)
    ex = Explanation(
        summary=f"{name} expects num_features={nf} but its input {fmt(shape)} has "
        f"{channels} channels (dim 1)",
        code="batchnorm-num-features",
    )
    ex.details.append(f"{channels} channels come from {ctx.origin(ctx.input_info(0))}")
    if x.dim() >= 3 and shape[-1] == nf and not _channels_first_made(ctx, shape):
        return _channels_last_norm(ex, name, shape, nf)
    ex.details.append("torch words this as a running_mean size error")
    ex.replace_layer(f"{name} = nn.{type(m).__name__}({channels})", m, num_features=channels)
    return ex


def _channels_first_made(ctx: Context, shape: tuple[int, ...]) -> bool:
    """The input is a conv's (N, C, ...) output as it came out: its dim 1 is channels."""
    made = shape_maker(ctx.trace, ctx.input_info(0))
    out = first_tensor(made.outputs) if made is not None else None
    return (
        made is not None
        and made.type.startswith("Conv")
        and out is not None
        and (out.shape == shape)
    )


def _channels_last_norm(ex: Explanation, name: str, shape: tuple[int, ...], nf: int) -> Explanation:
    """(B, L, C) or (N, H, W, C) into a norm that reads channels from dim 1: move them."""
    rank = len(shape)
    ex.code = "batchnorm-channels-last"
    if rank == 3:
        b, length, c = shape
        ex.details.append(
            f"the input is (batch, length, channels) = {fmt(shape)}: its {nf} features are "
            "last, but BatchNorm1d reads (N, C, L)"
        )
        ex.fixes.append(
            f"x = {name}(x.transpose(1, 2)).transpose(1, 2): normalizes {fmt((b, c, length))} "
            f"and gives back {fmt(shape)}"
        )
        ex.fixes.append(
            f"or per token: {name}(x.reshape(-1, {c})).view_as(x) normalizes {b * length} rows "
            f"of {c}"
        )
        return ex
    order = (0, rank - 1, *range(1, rank - 1))
    back = (0, *range(2, rank), 1)
    moved = tuple(shape[i] for i in order)
    ex.details.append(
        f"the input looks channels-last {fmt(shape)}: its {nf} channels are last, but the "
        "norm reads them from dim 1"
    )
    ex.fixes.append(
        f"x.permute{order} gives {fmt(moved)}; permute back with .permute{back} after {name}"
        if rank > 4 else
        f"x.permute(0, 3, 1, 2) gives {fmt(moved)} (channels first) before {name}"
    )  # fmt: skip
    del back
    return ex


def explain_layernorm(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.LayerNorm) or x is None:
        return None
    ns = tuple(m.normalized_shape)
    shape = tuple(x.shape)
    tail = shape[-len(ns) :] if len(shape) >= len(ns) else shape
    if tail == ns:
        return None
    name = ctx.name
    ex = Explanation(
        summary=f"{name} normalizes the trailing dims {fmt(ns)} but its input {fmt(shape)} "
        f"ends in {fmt(tail)}",
        code="layernorm-shape",
    )
    if len(shape) == 4 and len(ns) == 1 and shape[1] == ns[0]:
        ex.details.append(
            f"the input is (N, C, H, W) with C={shape[1]}: LayerNorm works on the last dims, "
            "not on dim 1"
        )
        ex.fixes.append(
            f"normalize channels: x.permute(0, 2, 3, 1) -> {name} -> permute(0, 3, 1, 2), "
            f"or nn.GroupNorm(1, {shape[1]})"
        )
        ex.fixes.append(f"or normalize (C, H, W): nn.LayerNorm({list(shape[1:])})")
    else:
        ex.details.append(f"{shape[-1]} comes from {ctx.origin(ctx.input_info(0))}")
        ex.replace_layer(f"{name} = nn.LayerNorm({shape[-1]})", m, normalized_shape=shape[-1])
    return ex


def explain_rnn(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.RNNBase) or x is None or isinstance(ctx.args[0], tuple):
        return None
    name, kind = ctx.name, type(m).__name__
    shape = tuple(x.shape)
    if x.dim() not in (2, 3):
        order = "(batch, seq, feature)" if m.batch_first else "(seq, batch, feature)"
        ex = Explanation(
            summary=f"{name} ({kind}) expects a 3-D input {order} but got {fmt(shape)}",
            code="rnn-input-rank",
        )
        if not _ids_with_a_trailing_one(ctx, ex, x):
            ex.fixes.append(f"reshape the input to {order} with feature={m.input_size}")
        return ex
    if shape[-1] != m.input_size:
        ex = Explanation(
            summary=f"{name} expects input_size={m.input_size} but gets {shape[-1]} features "
            f"per step: input {fmt(shape)}",
            code="rnn-input-size",
        )
        info = ctx.input_info(0)
        ex.details.append(f"{shape[-1]} comes from {ctx.origin(info)}")
        ex.replace_layer(
            f"{name} = nn.{kind}({shape[-1]}, {m.hidden_size}, ...)", m, input_size=shape[-1]
        )
        if is_model_input(ctx.trace, info, ctx.call):
            ex.fixes.append(
                f"or, if {name} is right (input_size={m.input_size}), the data is wrong: the "
                f"model's input {fmt(shape)} should have {m.input_size} features per step"
            )
        return ex
    return _rnn_hidden(ctx, x)


def _rnn_hidden(ctx: Context, x: torch.Tensor) -> Explanation | None:
    m = ctx.module
    hx = ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs.get("hx")
    if hx is None:
        return None
    states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
    dirs = 2 if m.bidirectional else 1
    batched = x.dim() == 3
    batch = int(x.shape[0] if m.batch_first else x.shape[1])
    for i, h in enumerate(states):
        if not isinstance(h, torch.Tensor):
            continue
        proj = int(getattr(m, "proj_size", 0))
        size = proj if (i == 0 and proj) else m.hidden_size
        expected: tuple[int, ...] = (m.num_layers * dirs, batch, size)
        if not batched:
            expected = (m.num_layers * dirs, size)
        if tuple(h.shape) == expected:
            continue
        which = ("h0", "c0")[i] if len(states) == 2 else "h0"
        layers = f"num_layers*num_directions = {m.num_layers}*{dirs} = {m.num_layers * dirs}"
        return Explanation(
            summary=f"{ctx.name}: {which} must be {fmt(expected)} but is {fmt(tuple(h.shape))}",
            details=[
                f"the state is ({layers}, batch={batch}, hidden={size}); "
                f"batch_first={m.batch_first} does not apply to it"
            ],
            fixes=[f"{which} = torch.zeros({', '.join(str(d) for d in expected)})"],
            code="rnn-hidden-shape",
        )
    return None


def explain_mha(ctx: Context) -> Explanation | None:
    m = ctx.module
    q = ctx.tensor_arg(0)
    if not isinstance(m, nn.MultiheadAttention) or q is None:
        return None
    name, shape = ctx.name, tuple(q.shape)
    if shape[-1] != m.embed_dim:
        ex = Explanation(
            summary=f"{name} has embed_dim={m.embed_dim} but the query {fmt(shape)} has "
            f"{shape[-1]} features",
            code="mha-embed-dim",
        )
        ex.details.append(f"{shape[-1]} comes from {ctx.origin(ctx.input_info(0))}")
        ex.fixes.append(f"{name} = nn.MultiheadAttention({shape[-1]}, {m.num_heads}, ...)")
        return ex
    mask = ctx.kwargs.get("key_padding_mask")
    if isinstance(mask, torch.Tensor) and q.dim() == 3 and mask.dim() == 2:
        batch = shape[0] if m.batch_first else shape[1]
        if mask.shape[0] != batch:
            ex = Explanation(
                summary=f"{name} reads its input as "
                f"{'(batch, seq, embed)' if m.batch_first else '(seq, batch, embed)'} "
                f"(batch_first={m.batch_first}), so the batch is {batch}, but "
                f"key_padding_mask {fmt(tuple(mask.shape))} has batch {mask.shape[0]}",
                code="mha-batch-first",
            )
            if not m.batch_first and tuple(mask.shape) == shape[:2]:
                ex.details.append(
                    f"your {fmt(shape)} looks batch-first: {shape[0]} sequences of {shape[1]} "
                    "tokens"
                )
                ex.fixes.append(
                    f"nn.MultiheadAttention({m.embed_dim}, {m.num_heads}, batch_first=True)"
                )
                ex.fixes.append("or pass x.transpose(0, 1) as (seq, batch, embed)")
            return ex
    return None
