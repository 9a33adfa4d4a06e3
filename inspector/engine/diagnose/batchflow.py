"""Where the batch changed, read from the forward's data flow.

The loss (or any op that pairs the model's output with the data) sees a batch other than the
model input's. The output's history (`history.py`) names the step where its dim 0 took the
wrong size and the tensor that step read; what that tensor was (a recurrent layer's final
hidden state, a sequence, a map of scores) decides the explanation and the fix. Each fix is
applied to the recorded shapes on meta tensors, and the layer that reads the result is run
on it the same way, before it is offered.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.context import Context, Explanation, dims_product_text, product
from inspector.engine.diagnose.dataflow import Change, Tensor, layer_on_meta, where_dim_became
from inspector.engine.diagnose.history import history
from inspector.engine.records import SourceLine
from inspector.engine.records import format_shape as fmt


def explain_from_flow(ctx: Context, ex: Explanation, output: Any, batch: int, wrong: int) -> bool:
    """Add where the batch became `wrong` (the model input's is `batch`) to `ex`; False when
    the output's history does not say."""
    value = history(ctx, output)
    if value is None:
        return False
    change = where_dim_became(value, 0, wrong)
    if change is None:
        return False
    step, before = change.step, change.before.shape
    ex.line = SourceLine(step.file, step.lineno, _text(step.file, step.lineno), step.function)
    path = _path(ctx, step.owner)
    if path is not None and path != ctx.call.path:
        ex.module = path
        ex.module_type = type(step.owner).__name__
    where = f"`{step.expr}` at line {step.lineno}"
    consumer = _consumer(value, change)
    rnn = _hidden_state(change.before, batch)
    if rnn is not None:
        return _hidden_state_folded(ex, change, where, rnn, batch, wrong, consumer)
    if len(before) >= 2 and before[0] == batch and wrong == product(before):
        return _map_flattened(ex, change, where, batch, wrong, consumer)
    if len(before) >= 3 and before[0] == batch and wrong % batch == 0:
        return _rows_folded(ex, change, where, batch, wrong, consumer)
    ex.details.append(
        f"{where} turns {fmt(before)} into {fmt(change.after.shape)}: the batch became {wrong}"
    )
    return True


def _hidden_state(before: Tensor, batch: int) -> nn.RNNBase | None:
    """The recurrent layer whose final hidden state h_n (layers*directions, batch, hidden)
    this tensor is."""
    module = before.module
    if not isinstance(module, nn.RNNBase) or len(before.shape) != 3:
        return None
    layers = module.num_layers * (2 if module.bidirectional else 1)
    width = module.proj_size or module.hidden_size
    if before.shape == (layers, batch, width):
        return module
    return None


def _hidden_state_folded(ex: Explanation, change: Change, where: str, rnn: nn.RNNBase,
                         batch: int, wrong: int, consumer: Tensor | None) -> bool:  # fmt: skip
    layers, _, width = change.before.shape
    kind = type(rnn).__name__
    ex.details.append(
        f"{where} turns {kind}'s final hidden state h_n {fmt(change.before.shape)} "
        f"(num_layers*directions={layers}, batch={batch}, hidden={width}) into "
        f"{fmt(change.after.shape)}: its {layers} layers went into the batch, "
        f"{layers}*{batch} = {wrong} rows"
    )
    meta = torch.empty(change.before.shape, device="meta")
    if rnn.bidirectional:
        fixed = torch.cat([meta[-2], meta[-1]], dim=1)
        text = "h_n of the last layer, both directions: torch.cat([h_n[-2], h_n[-1]], dim=1)"
    else:
        fixed = meta[-1]
        text = "the last layer's state: h_n[-1]"
    ex.fixes.append(f"{text} gives {fmt(tuple(fixed.shape))}{_then(consumer, fixed)}")
    return True


def _map_flattened(ex: Explanation, change: Change, where: str, batch: int, wrong: int,
                   consumer: Tensor | None) -> bool:  # fmt: skip
    before = change.before.shape
    k = wrong // batch
    kind = "map" if len(before) >= 3 else "row"
    ex.details.append(
        f"{where} flattens the {kind} {fmt(before)} with its batch: "
        f"{dims_product_text(before[1:])} = {k} values per sample where one per sample was "
        f"expected, {batch}*{k} = {wrong}"
    )
    meta = torch.empty(before, device="meta")
    if len(before) >= 3:
        dims = tuple(range(2, len(before)))
        fixed = meta.mean(dims)
        flat = fixed.reshape(batch) if fixed.shape[1] == 1 else fixed
        tail = ".view(-1)" if fixed.shape[1] == 1 else ""
        ex.fixes.append(
            f"reduce each map to one score per sample: .mean({dims}){tail} gives "
            f"{fmt(tuple(flat.shape))}"
        )
    ex.fixes.append(
        f"or keep the batch: x.view(x.size(0), -1) gives ({batch}, {k}); add nn.Linear({k}, 1) "
        "for one score per sample"
    )
    return True


def _rows_folded(ex: Explanation, change: Change, where: str, batch: int, wrong: int,
                 consumer: Tensor | None) -> bool:  # fmt: skip
    before, after = change.before.shape, change.after.shape
    k = wrong // batch
    if len(before) == 3 and after[-1] == before[-1]:
        steps = "time steps" if _sequence_layer(change.before.module) else "positions"
        ex.details.append(
            f"{where} turns {fmt(before)} into {fmt(after)}: the {before[1]} {steps} of each "
            f"sequence were folded into the batch, {batch}*{before[1]} = {wrong} rows"
        )
        meta = torch.empty(before, device="meta")
        last = meta[:, -1]
        ex.fixes.append(
            f"keep one row per sequence: x[:, -1] (the last step) or x.mean(1) gives "
            f"{fmt(tuple(last.shape))}{_then(consumer, last)}"
        )
        ex.fixes.append(
            f"or flatten per sequence: x.reshape({batch}, -1) gives ({batch}, "
            f"{before[1] * before[2]}) = {before[1]}*{before[2]}, and size the next layer for it"
        )
        return True
    per = product(before[1:])
    ex.details.append(
        f"{where} turns {fmt(before)} into {fmt(after)}: {batch}*{k} = {wrong} rows, "
        "features moved into the batch"
    )
    flat = torch.empty(before, device="meta").flatten(1)
    ex.fixes.append(
        f"flatten per sample: x.view(x.size(0), -1) gives ({batch}, {per}) = "
        f"{dims_product_text(before[1:])} features per sample{_then(consumer, flat, size=True)}"
    )
    return True


def _consumer(value: Tensor, change: Change) -> Tensor | None:
    """The first tensor made from the changed one by a layer: the layer that reads it."""
    made: Tensor | None = None
    for t in value.lineage():
        if t is change.after:
            return made
        if isinstance(t.module, nn.Module):
            made = t
    return None


def _then(consumer: Tensor | None, fixed: torch.Tensor, size: bool = False) -> str:
    """`, and head (Linear) then gives (4, 3)`: the reading layer run on the fixed shape."""
    module = consumer.module if consumer is not None else None
    if module is None or not isinstance(module, nn.Module):
        return ""
    out = layer_on_meta(module, [fixed], {})
    name = _name(consumer, module)
    if isinstance(out, torch.Tensor):
        return f"; {name} then gives {fmt(tuple(out.shape))}"
    if size and isinstance(module, nn.Linear):
        return f", and size {name} for {fixed.shape[-1]} inputs (in_features={fixed.shape[-1]})"
    return ""


def _name(made: Tensor | None, module: nn.Module) -> str:
    """`head (Linear)`: the layer as its call names it."""
    kind = type(module).__name__
    if made is not None and made.call is not None and made.call.path:
        return f"{made.call.path} ({kind})"
    if made is not None and made.step is not None:
        callee = made.step.expr.split("(", 1)[0].rsplit(".", 1)[-1]
        if callee.isidentifier():
            return f"{callee} ({kind})"
    return kind


def _path(ctx: Context, owner: Any) -> str | None:
    """The path of the module whose forward holds a step, in the model that failed."""
    if not isinstance(owner, nn.Module):
        return None
    for call in ctx.trace.calls:
        if ctx.live_module(call.seq) is owner:
            return call.path
    root = ctx.live_module(0)
    if isinstance(root, nn.Module):
        for path, module in root.named_modules():
            if module is owner:
                return path
    return None


def _sequence_layer(module: Any) -> bool:
    return isinstance(module, (nn.RNNBase, nn.TransformerEncoder, nn.TransformerDecoder))


def _text(file: str, lineno: int) -> str:
    import linecache

    return linecache.getline(file, lineno).rstrip("\n")
