"""Inputs that disagree with a configured model: fix the input, not the layer.

An RGBA or grayscale image fed to a 3-channel stem, channels-last images, 128-mel features
for an 80-mel encoder, a sequence longer than the position table: the layer is right (it was
built or pretrained that way) and the input is not. The fix says how to make the input fit,
named by the config attribute the expectation comes from when the model has a `config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from inspector.engine.diagnose.context import Context, Explanation, product
from inspector.engine.diagnose.embeddings import position_span
from inspector.engine.diagnose.inputs import (
    config_name,
    config_of,
    config_value,
    expectation,
    input_named,
    named_inputs,
    sequence_input,
)
from inspector.engine.records import TensorInfo
from inspector.engine.records import format_shape as fmt


def numbers_seen(ctx: Context) -> set[int]:
    """Every number in the error message, the failing op's operand shapes and int arguments."""
    found = {int(n) for n in re.findall(r"\d+", str(ctx.message))}
    if ctx.op is not None:
        for a in (*ctx.op.args, *ctx.op.kwargs.values()):
            if isinstance(a, torch.Tensor):
                found.update(int(d) for d in a.shape)
            elif isinstance(a, int):
                found.add(a)
            elif isinstance(a, (tuple, list, torch.Size)):
                found.update(int(d) for d in a if isinstance(d, int))
    return found


Change = Callable[[torch.Tensor], torch.Tensor]


def image_channel_fix(
    given: str, shape: tuple[int, ...], c_in: int
) -> tuple[list[str], list[tuple[str, Change]]] | None:
    """What makes an (N, C, H, W) input with the wrong C fit a layer built for `c_in`
    channels: the words and, for each fix, the change it makes to the input (checked on the
    walked pass); None when no change of the input fits."""
    if len(shape) != 4:
        return None
    n, c, h, w = shape
    if w == c_in and c != c_in:
        return (
            [f"{given} {fmt(shape)} looks channels-last (N, H, W, C); the model reads "
             "(N, C, H, W)"],
            [(f"{given} = {given}.permute(0, 3, 1, 2) gives {fmt((n, w, c, h))} with {c_in} "
              "channels", lambda t: t.permute(0, 3, 1, 2))],
        )  # fmt: skip
    if c == 4 and c_in == 3:
        return (
            ["4 channels are RGBA: the alpha channel is extra"],
            [(f"drop alpha: {given}[:, :3] gives {fmt((n, 3, h, w))} (or "
              "image.convert('RGB') when loading)", lambda t: t[:, :3])],
        )  # fmt: skip
    if c == 1 and c_in == 3:
        return (
            [f"1 channel is a grayscale image; the model was built for {c_in}"],
            [(f"{given}.repeat(1, {c_in}, 1, 1) (or .expand(-1, {c_in}, -1, -1)) gives "
              f"{fmt((n, c_in, h, w))}", lambda t: t.repeat(1, c_in, 1, 1))],
        )  # fmt: skip
    if c_in == 1 and c == 3:
        return (
            ["3 channels are RGB; the model was built for grayscale"],
            [(f"{given}.mean(1, keepdim=True) gives {fmt((n, 1, h, w))}",
              lambda t: t.mean(1, keepdim=True))],
        )  # fmt: skip
    return None


def explain_sequence_length(ctx: Context) -> Explanation | None:
    """A sequence longer than the model's max_position_embeddings, wherever it raised."""
    if isinstance(ctx.module, torch.nn.Embedding):
        return None  # a position table: the embedding family names it with the config
    config = config_of(ctx)
    limit = config_value(config, "max_position_embeddings")
    seq = sequence_input(ctx)
    if not isinstance(limit, int) or seq is None or seq[1].ndim < 2:
        return None
    name, info = seq
    length = info.shape[1]
    seen = numbers_seen(ctx)
    start = _position_start(ctx, length)
    usable = limit - start
    if length <= usable or limit not in seen or (length not in seen and not start):
        return None
    attr = config_name(config, "max_position_embeddings")
    offset = f", positions start at {start}" if start else ""
    return Explanation(
        summary=f"{name} {fmt(info.shape)} has sequence length {length} but {attr}={limit}"
        f"{offset}: the model has {usable} positions",
        details=[
            f"{ctx.call.path or 'the model'} sizes its position tensors by {attr}; the "
            f"{length}-token input overruns them"
        ],
        fixes=[
            f"truncate {name} to {usable} tokens: {name}[:, :{usable}] (tokenizer(..., "
            f"truncation=True, max_length={usable}))",
            f"or a model whose max_position_embeddings >= {length + start}; a pretrained "
            f"table of {limit} positions cannot be extended without training",
        ],
        code="input-too-long",
    )


def _position_start(ctx: Context, length: int) -> int:
    """Where the position ids among the failing op's operands start (RoBERTa counts from
    padding_idx + 1); 0 when none is there."""
    if ctx.op is None:
        return 0
    for a in (*ctx.op.args, *ctx.op.kwargs.values()):
        if isinstance(a, torch.Tensor) and not a.is_floating_point() and a.shape[-1:] == (length,):
            span = position_span(a)
            if span is not None:
                return span[0]
    return 0


def explain_pixel_values(ctx: Context) -> Explanation | None:
    """Images that disagree with config.num_channels or config.image_size, wherever the
    library checks them (its own ValueError) or a layer fails on them."""
    config = config_of(ctx)
    channels = config_value(config, "num_channels")
    info = input_named(ctx, "pixel_values")
    if not isinstance(channels, int) or info is None or info.ndim != 4:
        return None
    seen = numbers_seen(ctx)
    shape = info.shape
    if shape[1] != channels and shape[1] in seen:
        found = image_channel_fix("pixel_values", shape, channels)
        ex = Explanation(
            summary=f"pixel_values {fmt(shape)} has {shape[1]} channels but "
            f"config.num_channels={channels}",
            code="input-channels",
        )
        if found is not None:
            ex.details.extend(found[0])
            for text, change in found[1]:
                ex.change_input(text, "pixel_values", change)
        else:
            ex.fixes.append(f"feed {channels}-channel images (the model's image processor)")
        return ex
    size = config_value(config, "image_size")
    side = size if isinstance(size, int) else None
    if isinstance(size, (tuple, list)) and len(size) == 2 and size[0] == size[1]:
        side = int(size[0])
    if side is None or tuple(shape[2:]) == (side, side) or shape[2] not in seen:
        return None
    return Explanation(
        summary=f"pixel_values {fmt(shape)} is {shape[2]}x{shape[3]} but config.image_size={side}",
        details=[f"the position embeddings cover a {side}x{side} image"],
        fixes=[
            f"resize the images to {side}x{side} (the model's image processor does): "
            f"F.interpolate(pixel_values, size=({side}, {side}))",
            "or pass interpolate_pos_encoding=True where the model supports it",
        ],
        code="input-image-size",
    )


def first_layer(ctx: Context) -> bool:
    """No module ran before this call except the ones that enclose it: the call is the first
    layer that sees the data."""
    ancestors = set()
    seq = ctx.call.parent
    while seq is not None:
        ancestors.add(seq)
        seq = ctx.trace.calls[seq].parent
    return all(c.seq in ancestors for c in ctx.trace.calls[: ctx.call.seq])


def explain_conv_input(ctx: Context, x: torch.Tensor, given: str | None) -> Explanation | None:
    """A conv that is the model's first layer, or is fed a model input, with the wrong
    channels: the input is wrong."""
    m = ctx.module
    c_in, name, shape = m.in_channels, ctx.call.path, tuple(x.shape)
    config = config_of(ctx)
    source: tuple[str, TensorInfo] | None = None
    for found, info in named_inputs(ctx):
        if given == found or (given is None and info.ndim == x.dim()):
            source = (found, info)
            break
    if source is None:
        return None
    in_name, in_info = source
    channels = shape[1]
    if x.dim() == 4:
        if given is None and not (in_info.shape[-1] == c_in and in_info.shape[1] != c_in):
            return None  # made from the input by code in forward: only a layout tells
        fix = image_channel_fix(in_name, in_info.shape, c_in)
        if fix is None:
            return None
        expects = expectation(config, c_in, ("num_channels",))
        ex = Explanation(
            summary=f"{name} expects {c_in} input channels{expects} but gets {channels}: "
            f"{in_name} {fmt(in_info.shape)} does not fit the model",
            code="conv-input-channels",
        )
        if given is None:
            ex.details.append(
                f"{name} gets {fmt(shape)}, made from {in_name} {fmt(in_info.shape)} in "
                "forward: padding or cropping the last dims of a channels-last tensor changes "
                "W and C"
            )
        ex.details.extend(fix[0])
        for text, change in fix[1]:
            ex.change_input(text + (" before anything else" if given is None else ""), in_name,
                            change)  # fmt: skip
        return ex
    if x.dim() == 3 and given is not None and shape[2] == c_in and channels != c_in:
        return _sequence_channels_last(name, given, shape, c_in)
    if x.dim() == 3 and given is not None:
        expects = expectation(config, c_in, ("num_mel_bins", "feature_size", "num_channels"))
        return Explanation(
            summary=f"{name} expects {c_in} features per frame{expects} but {given} "
            f"{fmt(shape)} has {channels}: the input's feature count is wrong",
            details=[
                f"{name} is the model's input layer, built for {c_in}-bin features; "
                f"{given} was computed with {channels}"
            ],
            fixes=[
                f"compute the features with {c_in} bins (the feature extractor that goes "
                f"with this model), not {channels}",
                f"or, to train on {channels}-bin features, a model built for them",
            ],
            code="conv-input-features",
        )
    return None


def _sequence_channels_last(
    name: str, given: str, shape: tuple[int, ...], c_in: int
) -> Explanation:
    """(batch, length, channels) into a Conv1d, which reads (batch, channels, length)."""
    n, length, c = shape
    return Explanation(
        summary=f"{name} expects {c_in} input channels but {given} {fmt(shape)} has them last: "
        "Conv1d reads (N, C, L)",
        details=[
            f"{given} is (batch, length, channels) = {fmt(shape)}: its {c} features per step "
            f"are dim 2, and dim 1 ({length}) is read as channels"
        ],
        fixes=[f"{given}.transpose(1, 2) gives {fmt((n, c, length))} before {name}"],
        code="conv-input-channels",
    )


def input_rank(ctx: Context, shape: tuple[int, ...], rank: int) -> Explanation | None:
    """The model's first conv gets one dim too many because the model adds the channel dim
    itself (raw audio as (N, L)): the input has an extra dim, which one the shapes tell."""
    m = ctx.module
    for name, info in named_inputs(ctx):
        if info.numel != product(shape) or info.ndim != len(shape) - 1:
            continue
        ones = [d for d in range(1, info.ndim) if info.shape[d] == 1]
        if ones:
            fixed = tuple(s for i, s in enumerate(info.shape) if i != ones[0])
            fix, why = f"{name}.squeeze({ones[0]}) gives {fmt(fixed)}", ""
        elif info.ndim == 3 and info.shape[-1] <= 8 and m.in_channels == 1:
            fixed = info.shape[:-1]
            fix = f"mix down to mono: {name}.mean(-1) gives {fmt(fixed)}"
            why = f"the last dim ({info.shape[-1]}) looks like audio channels"
        else:
            continue
        layout = "(batch, length)" if rank == 3 else "(batch, H, W)"
        ex = Explanation(
            summary=f"{name} {fmt(info.shape)} has one dim too many: the model adds the channel "
            f"dim itself, so {ctx.call.path} gets {fmt(shape)} instead of a {rank}-D input",
            code="input-rank",
        )
        if why:
            ex.details.append(why)
        ex.details.append(f"the model takes {name} as {layout}, here {fmt(fixed)}")
        ex.fixes.append(fix)
        return ex
    return None
