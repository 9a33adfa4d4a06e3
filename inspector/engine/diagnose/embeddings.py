"""Embedding lookups out of range, told apart by what the index is.

A position table indexed by `arange(T)` (or a `position_ids` buffer) that is too small means
the sequence is longer than the model allows: truncate the input, or build a longer table.
A table indexed by a user input means that input holds ids the table does not have: tokens
added to a tokenizer without `resize_token_embeddings`, or a segment id the model never had.
Which it is comes from where the index tensor came from (a model input, by name, or values
made inside the model), and the module's role in the model's `config`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.inputs import (
    config_name,
    config_of,
    config_value,
    has_resize,
    name_of,
    sequence_input,
)
from inspector.engine.diagnose.ops import ELEMENTWISE_OPS, broadcast_mismatch
from inspector.engine.records import format_shape as fmt


def explain_embedding(ctx: Context) -> Explanation | None:
    m = ctx.module
    x = ctx.tensor_arg(0)
    if not isinstance(m, (nn.Embedding, nn.EmbeddingBag)) or x is None:
        return None
    name = ctx.name
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
    given = name_of(ctx, x)
    if hi >= n and given is not None and "position" in given and _positions(x, name):
        return _given_positions(ctx, given, x, hi, n)
    if hi >= n and given is None and _positions(x, name):
        return _too_long(ctx, x, hi, n)
    if hi >= n and given is not None:
        return _bad_input(ctx, given, x, hi, n)
    ex = Explanation(
        summary=f"{name} has num_embeddings={n} (ids 0..{n - 1}) but the input holds id "
        f"{hi if hi >= n else lo}",
        code="embedding-index",
    )
    if hi >= n:
        count = int((x >= n).sum())
        ex.details.append(f"{count} of {x.numel()} ids are >= {n}; the largest is {hi}")
        ex.details.append(f"the ids are {ctx.origin(ctx.input_info(0))}")
        ex.fixes.append(
            f"{name} = nn.Embedding({hi + 1}, {m.embedding_dim}) to cover id {hi}, or keep "
            f"the ids below {n}"
        )
    if lo < 0:
        ex.details.append(f"negative ids are invalid (smallest {lo}); padding ids must be >= 0")
        if hi < n:
            ex.fixes.append("map padding to a valid id (e.g. 0, with padding_idx=0)")
    return ex


def _positions(x: torch.Tensor, name: str) -> bool:
    """Index values made inside the model that count positions: each row runs 0, 1, 2... by
    one (an arange, a position_ids buffer), or the module is named as a position table."""
    if x.dim() >= 1 and x.shape[-1] >= 2:
        steps = x.diff(dim=-1)
        if bool((steps == 1).all()):
            return True
    return re.search(r"(^|[._])(pos|position|wpe)", name.lower()) is not None


def position_span(x: torch.Tensor) -> tuple[int, int] | None:
    """(first position, sequence length) of position ids whose rows count up by one."""
    if x.is_floating_point() or x.dim() < 1 or x.shape[-1] < 2 or x.device.type == "meta":
        return None
    if not bool((x.diff(dim=-1) == 1).all()):
        return None
    return int(x[..., 0].min()), int(x.shape[-1])


def _too_long(ctx: Context, x: torch.Tensor, hi: int, n: int) -> Explanation:
    name, dim = ctx.name, ctx.module.embedding_dim
    start, length = position_span(x) or (0, hi + 1)
    usable = n - start
    offset = f", positions start at {start}" if start else ""
    ex = Explanation(
        summary=f"sequence length {length} exceeds {name}'s {usable} positions "
        f"(num_embeddings={n}{offset}): position ids run to id {hi}",
        code="embedding-index",
    )
    ex.details.append(
        f"{name} is indexed by positions ({fmt(tuple(x.shape))}, counting up from {start}), "
        "made inside the model: no id is wrong, the sequence is too long for the table"
    )
    seq = sequence_input(ctx)
    seq_name = "the input"
    if seq is not None and seq[1].ndim >= 2 and seq[1].shape[1] == length:
        seq_name = seq[0]
        ex.details.append(f"the length comes from {seq[0]} {fmt(seq[1].shape)}")
    config = config_of(ctx)
    limit = config_value(config, "max_position_embeddings")
    cut = f"truncate {seq_name} to {usable} tokens: {seq_name}[:, :{usable}]"
    if isinstance(limit, int) and limit == n:
        attr = config_name(config, "max_position_embeddings")
        ex.details.append(f"{attr}={n} sets the table")
        ex.fixes.append(f"{cut} (tokenizer(..., truncation=True, max_length={usable}))")
        ex.fixes.append(
            f"or a model whose max_position_embeddings >= {length + start}; a pretrained "
            f"table of {n} positions cannot be extended without training"
        )
        return ex
    ex.fixes.append(cut)
    ex.fixes.append(
        f"or a table of >= {length + start} rows: {name} = nn.Embedding({length + start}, {dim})"
    )
    return ex


def _given_positions(ctx: Context, given: str, x: torch.Tensor, hi: int, n: int) -> Explanation:
    """Position ids the caller passed in, past the table."""
    name = ctx.name
    start, length = position_span(x) or (0, hi + 1)
    ex = Explanation(
        summary=f"{given} {fmt(tuple(x.shape))} runs to {hi} but {name} has {n} positions "
        f"(0..{n - 1})",
        details=[f"{given} is a model input, counting up from {start}"],
        code="embedding-index",
    )
    if length <= n:
        ex.fixes.append(
            f"count from 0: {given} = torch.arange({length}).expand({x.shape[0]}, -1) stays "
            f"below {n}"
        )
    else:
        ex.fixes.append(f"the {length} positions exceed the table: truncate to {n} tokens")
    ex.fixes.append(f"or keep earlier plus new tokens within {n} positions")
    return ex


def _bad_input(ctx: Context, given: str, x: torch.Tensor, hi: int, n: int) -> Explanation:
    name, dim = ctx.name, ctx.module.embedding_dim
    count = int((x >= n).sum())
    config = config_of(ctx)
    shape = fmt(tuple(x.shape))
    if config is not None and config_value(config, "type_vocab_size") == n and n < 16:
        return Explanation(
            summary=f"{given} {shape} holds {hi} but config.type_vocab_size={n} allows only "
            f"0..{n - 1}: the input is wrong",
            details=[f"{count} of {x.numel()} ids are >= {n}; {name} has {n} rows"],
            fixes=[
                f"build {given} with values 0..{n - 1} (the tokenizer's "
                "return_token_type_ids), or leave it out",
            ],
            code="embedding-index",
        )
    if config is not None and config_value(config, "vocab_size") == n and has_resize(ctx):
        return Explanation(
            summary=f"{given} {shape} holds id {hi} but config.vocab_size={n} (ids "
            f"0..{n - 1}): tokens were added to the tokenizer without resizing the model",
            details=[f"{count} of {x.numel()} ids are >= {n}; {name} has {n} rows"],
            fixes=[
                f"model.resize_token_embeddings({hi + 1}) (len(tokenizer) after adding "
                "tokens), then train the new rows",
                f"or keep {given} below {n}: the tokenizer must match the model",
            ],
            code="embedding-index",
        )
    return Explanation(
        summary=f"{given} {shape} holds id {hi} but {name}'s vocabulary has {n} ids (0..{n - 1})",
        details=[f"{count} of {x.numel()} ids are >= {n}; the largest is {hi}"],
        fixes=[
            f"if {given} is right, {name} needs {hi + 1} rows: "
            f"{name} = nn.Embedding({hi + 1}, {dim})",
            f"otherwise {given} holds values outside 0..{n - 1}: check how it is built",
        ],
        code="embedding-index",
    )


def explain_position_parameter(ctx: Context) -> Explanation | None:
    """`x + self.pos_embedding[:, :T]` with T past the table: the slice stops at the table's
    N rows and the add fails; the sequence is too long for a learned position parameter."""
    op = ctx.op
    tensors = ctx.op_tensors()
    if op is None or op.name not in ELEMENTWISE_OPS or len(tensors) != 2:
        return None
    for i, t in enumerate(tensors):
        found = _parameter_behind(ctx.module, t)
        if found is None or not re.search(r"pos", found[0].lower()):
            continue
        pname, table = found
        other = tensors[1 - i]
        clashes = broadcast_mismatch(tuple(t.shape), tuple(other.shape))
        if len(clashes) != 1 or t.dim() != other.dim() or t.dim() != table.dim():
            continue
        d, _, _ = clashes[0]
        rows, length = table.shape[d], other.shape[d]
        if t.shape[d] != rows or length <= rows:
            continue
        shape = fmt(tuple(table.shape))
        seq = sequence_input(ctx)
        cut = f"the input to {rows} positions (x[:, :{rows}])"
        if seq is not None and seq[1].ndim >= 2 and seq[1].shape[1] == length:
            cut = f"{seq[0]} to {rows} positions: {seq[0]}[:, :{rows}]"
        grown = fmt((*table.shape[:d], length, *table.shape[d + 1 :]))
        return Explanation(
            summary=f"sequence length {length} exceeds the {rows} positions of {pname} {shape}",
            details=[
                f"the slice of {pname} stops at its {rows} rows, so {fmt(tuple(t.shape))} "
                f"meets {fmt(tuple(other.shape))} (dim {d}: {rows} vs {length})"
            ],
            fixes=[
                f"truncate {cut}",
                f"or a table of >= {length} positions: {pname} = nn.Parameter(torch.zeros{grown})",
            ],
            code="position-table",
        )
    return None


def _parameter_behind(module: object, t: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """The parameter or buffer of `module` that `t` is (or is a view of), with its name."""
    if not isinstance(module, nn.Module) or not isinstance(t, torch.Tensor):
        return None
    if type(t) not in (torch.Tensor, nn.Parameter) and type(t).__name__ != "FakeTensor":
        return None  # a subclass of the user's: its _base is not read
    base = t._base if t._base is not None else t
    for name, p in module.named_parameters():
        if p is base or p is t:
            return name, p
    for name, b in module.named_buffers():
        if b is base or b is t:
            return name, b
    return None
