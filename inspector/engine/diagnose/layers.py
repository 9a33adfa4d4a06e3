"""Families explained from a layer's own attributes: Linear, Conv, norms, Embedding, RNNs, MHA.

Each explainer compares what the module declares (in_features, in_channels, num_features,
normalized_shape, num_embeddings, input_size, embed_dim) with the live input, and computes
the fix from the recorded shapes. None means "not this family".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inspector.engine.diagnose.context import (
    Context,
    Explanation,
    dims_product_text,
    producer_call,
    product,
)
from inspector.engine.records import first_tensor
from inspector.engine.records import format_shape as fmt


def explain_linear(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.Linear) or x is None or x.dim() == 0:
        return None
    in_f, out_f, name = m.in_features, m.out_features, ctx.call.path or "the model"
    k = x.shape[-1]
    if k == in_f:
        return None
    shape = tuple(x.shape)
    info = ctx.input_info(0)
    ex = Explanation(
        summary=f"{name} expects {in_f} input features but its input {fmt(shape)} has {k}",
        code="linear-in-features",
    )
    ex.details.append(f"{k} comes from {ctx.origin(info)}")
    base = producer_call(ctx.trace, info)
    if x.dim() > 2:
        per_sample = product(shape[1:])
        ex.details.append(
            f"nn.Linear acts on the last dim only ({k}); a {x.dim()}-D input keeps "
            f"{fmt(shape[:-1])} as batch dims"
        )
        if per_sample == in_f:
            ex.fixes.append(f"flatten first: x = x.flatten(1) gives {fmt((shape[0], in_f))}")
        else:
            ex.fixes.append(
                f"flatten first (x.flatten(1) gives {per_sample} = "
                f"{dims_product_text(shape[1:])} features per sample) and set "
                f"{name} = nn.Linear({per_sample}, {out_f})"
            )
        return ex
    per_text = f"{k} features per sample"
    if base is not None and info is not None and info.view_of is not None:
        base_out = first_tensor(base.outputs)
        if base_out is not None and base_out.ndim > 1 and product(base_out.shape[1:]) == k:
            per_text = (
                f"after {base.name} the tensor is {fmt(base_out.shape)} = "
                f"{dims_product_text(base_out.shape[1:])} = {k} features per sample"
            )
    ex.fixes.append(f"{name} = nn.Linear({k}, {out_f}): {per_text}")
    if (
        base is not None
        and base.type == "Linear"
        and info is not None
        and info.producer is not None
    ):
        ex.fixes.append(f"or make {base.name} produce {in_f} features (out_features={in_f})")
    return ex


_CONV_RANK = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}


def explain_conv(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or x is None:
        return None
    rank = _CONV_RANK[type(m)] if type(m) in _CONV_RANK else x.dim()
    name, kind = ctx.call.path, type(m).__name__
    c_in, c_out = m.in_channels, m.out_channels
    shape = tuple(x.shape)
    spatial = rank - 2
    layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[spatial]
    if x.dim() < rank - 1 or x.dim() > rank or (x.dim() == rank - 1 and spatial == 1):
        return _conv_rank(ctx, shape, rank, layout)
    if x.dim() == rank - 1:  # unbatched input
        shape = (1, *shape)
    channels = shape[1]
    if channels == c_in:
        return None  # channels fine: kernel/size problem, explained by the spatial family
    ex = Explanation(
        summary=f"{name} expects {c_in} input channels but its input {fmt(tuple(x.shape))} "
        f"has {channels}",
        code="conv-in-channels",
    )
    if spatial == 2 and shape[-1] == c_in and channels != c_in:
        ex.details.append(
            f"the input looks channels-last (N, H, W, C) = {fmt(shape)}; {kind} reads {layout}"
        )
        ex.fixes.append(
            f"x = x.permute(0, 3, 1, 2) gives {fmt((shape[0], shape[3], shape[1], shape[2]))} "
            f"with {c_in} channels"
        )
        return ex
    ex.details.append(f"{channels} channels come from {ctx.origin(ctx.input_info(0))}")
    ex.fixes.append(f"{name} = nn.{kind}({channels}, {c_out}, ...) (in_channels={channels})")
    if channels == 1 and c_in == 3:
        ex.fixes.append("or repeat grayscale images to 3 channels: x = x.repeat(1, 3, 1, 1)")
    base = producer_call(ctx.trace, ctx.input_info(0))
    if base is not None and base.type.startswith("Conv"):
        ex.fixes.append(f"or make {base.name} output {c_in} channels (out_channels={c_in})")
    return ex


def _conv_rank(ctx: Context, shape: tuple[int, ...], rank: int, layout: str) -> Explanation:
    m = ctx.module
    name, kind = ctx.call.path, type(m).__name__
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


def explain_batchnorm(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.modules.batchnorm._BatchNorm) or x is None or x.dim() < 2:
        return None
    channels, nf, name = x.shape[1], m.num_features, ctx.call.path
    if channels == nf:
        return None
    ex = Explanation(
        summary=f"{name} expects num_features={nf} but its input {fmt(tuple(x.shape))} has "
        f"{channels} channels (dim 1)",
        code="batchnorm-num-features",
    )
    ex.details.append(f"{channels} channels come from {ctx.origin(ctx.input_info(0))}")
    ex.details.append("torch words this as a running_mean size error")
    ex.fixes.append(f"{name} = nn.{type(m).__name__}({channels})")
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
    name = ctx.call.path
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
        ex.fixes.append(f"{name} = nn.LayerNorm({shape[-1]})")
    return ex


def explain_embedding(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, (nn.Embedding, nn.EmbeddingBag)) or x is None:
        return None
    name = ctx.call.path
    if x.is_floating_point() or x.dtype == torch.bool:
        dtype = str(x.dtype).removeprefix("torch.")
        return Explanation(
            summary=f"{name} needs integer token ids but got {dtype}",
            details=[
                f"embedding indices must be int64 (or int32); the input {fmt(tuple(x.shape))}"
                f" is {dtype}"
            ],
            fixes=["convert the ids: tokens = tokens.long()"],
            code="embedding-dtype",
        )
    if x.numel() == 0 or x.device.type == "meta":
        return None
    lo, hi = int(x.min()), int(x.max())
    n = m.num_embeddings
    if lo >= 0 and hi < n:
        return None
    ex = Explanation(
        summary=f"{name} has num_embeddings={n} (ids 0..{n - 1}) but the input holds id "
        f"{hi if hi >= n else lo}",
        code="embedding-index",
    )
    if hi >= n:
        count = int((x >= n).sum())
        ex.details.append(f"{count} of {x.numel()} ids are >= {n}; the largest is {hi}")
        ex.fixes.append(
            f"{name} = nn.Embedding({hi + 1}, {m.embedding_dim}) to cover id {hi}, or use the "
            "tokenizer's vocabulary size"
        )
    if lo < 0:
        ex.details.append(f"negative ids are invalid (smallest {lo}); padding ids must be >= 0")
    return ex


def explain_rnn(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, nn.RNNBase) or x is None or isinstance(ctx.args[0], tuple):
        return None
    name, kind = ctx.call.path, type(m).__name__
    shape = tuple(x.shape)
    if x.dim() not in (2, 3):
        order = "(batch, seq, feature)" if m.batch_first else "(seq, batch, feature)"
        return Explanation(
            summary=f"{name} ({kind}) expects a 3-D input {order} but got {fmt(shape)}",
            fixes=[f"reshape the input to {order} with feature={m.input_size}"],
            code="rnn-input-rank",
        )
    if shape[-1] != m.input_size:
        ex = Explanation(
            summary=f"{name} expects input_size={m.input_size} but gets {shape[-1]} features "
            f"per step: input {fmt(shape)}",
            code="rnn-input-size",
        )
        ex.details.append(f"{shape[-1]} comes from {ctx.origin(ctx.input_info(0))}")
        ex.fixes.append(f"{name} = nn.{kind}({shape[-1]}, {m.hidden_size}, ...)")
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
            summary=f"{ctx.call.path}: {which} must be {fmt(expected)} "
            f"but is {fmt(tuple(h.shape))}",
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
    name, shape = ctx.call.path, tuple(q.shape)
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
