"""Losses given the wrong target: shape, dtype, class dimension, batch size.

A loss compares the model's output with a target. Who is wrong decides where to point: an
image passed as a BCE target is the caller's mistake (the target line); a batch of 16 where
the data has 4 is the model's (the view that folded positions into the batch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.batchfold import explain_batch_change, seq_first_input
from inspector.engine.diagnose.context import (
    Context,
    Explanation,
    dims_product_text,
    label,
    producer_call,
    product,
    reshape_line,
)
from inspector.engine.diagnose.history import history, op_operands
from inspector.engine.diagnose.inputs import config_name, config_of, expectation, named_inputs
from inspector.engine.records import Call, TensorInfo, first_tensor
from inspector.engine.records import format_shape as fmt

LOSS_OPS = {
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "cross_entropy": "CrossEntropyLoss",
    "cross_entropy_loss": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "nll_loss_nd": "NLLLoss",
    "mse_loss": "MSELoss",
    "l1_loss": "L1Loss",
    "smooth_l1_loss": "SmoothL1Loss",
    "huber_loss": "HuberLoss",
}
CLASS_LOSSES = {"CrossEntropyLoss", "NLLLoss"}


def is_loss(call: Call, module: Any) -> bool:
    return call.path == "loss_fn" or isinstance(module, nn.modules.loss._Loss)


def loss_kind(ctx: Context) -> str | None:
    if isinstance(ctx.module, nn.modules.loss._Loss):
        return type(ctx.module).__name__
    if ctx.op is not None and ctx.op.name in LOSS_OPS:
        return LOSS_OPS[ctx.op.name]
    return None


def explain_loss(ctx: Context) -> Explanation | None:
    kind = loss_kind(ctx)
    out, target = ctx.tensor_arg(0), ctx.tensor_arg(1)
    if kind is not None and not isinstance(ctx.module, nn.modules.loss._Loss):
        # a loss function called inside a forward: its operands, not the forward's inputs
        operands = op_operands(ctx)
        out, target = [*operands, None, None][:2]
    if kind is None or out is None or target is None:
        return None
    if kind in CLASS_LOSSES:
        return _class_loss(ctx, kind, out, target)
    if kind.startswith("BCE") and not target.is_floating_point():
        dtype = str(target.dtype).removeprefix("torch.")
        return Explanation(
            summary=f"{kind} needs a floating-point target, got {dtype}",
            fixes=["target = target.float()"],
            code="loss-target-dtype",
        )
    if kind == "BCELoss" and "between 0 and 1" in ctx.message:
        return _bce_on_logits(ctx, out)
    if tuple(out.shape) == tuple(target.shape):
        return None
    so, st = fmt(tuple(out.shape)), fmt(tuple(target.shape))
    ex = Explanation(
        summary=f"{kind}: the output {so} and the target {st} have different shapes",
        code="loss-target-shape",
    )
    if kind.startswith("BCE") and target.numel() > out.numel():
        ex.details.append(
            f"the target holds {target.numel() // max(target.shape[0], 1)} values per sample, "
            f"the output {out.numel() // max(out.shape[0], 1)}: it looks like the input images"
        )
        ex.fixes.append(
            f"pass labels shaped like the output {so}: torch.ones({', '.join(map(str, out.shape))})"
            f" for real, torch.zeros({', '.join(map(str, out.shape))}) for fake"
        )
        return ex
    if out.dim() == target.dim() + 1 and out.shape[-1] == 1:
        ex.fixes.append(f"target.unsqueeze(-1) gives {fmt((*target.shape, 1))}")
        ex.fixes.append(f"or output.squeeze(-1) gives {fmt(tuple(out.shape[:-1]))}")
        return ex
    if out.dim() == target.dim() + 1 and tuple(out.shape[:-1]) == tuple(target.shape):
        return _values_per_sample(ctx, ex, out, target)
    if out.dim() == target.dim() and out.shape[0] == target.shape[0]:
        info = ctx.input_info(0)
        made = shape_maker(ctx.trace, info)
        if made is not None:
            made_in = first_tensor(made.inputs)
            ex.line = made.call_site
            ex.details.append(
                f"{label(made)} makes the output's shape"
                + (f" from {fmt(made_in.shape)}" if made_in is not None else "")
            )
            ex.fixes.append(
                f"make {made.name} produce {fmt(tuple(target.shape[1:]))} per sample instead of "
                f"{fmt(tuple(out.shape[1:]))}, or resize: F.interpolate(out, "
                f"size={tuple(target.shape[2:])})"
            )
        return ex
    return _batch_mismatch(ctx, ex, out, target)


def _bce_on_logits(ctx: Context, out: torch.Tensor) -> Explanation:
    """BCELoss given raw scores: it takes probabilities (after a sigmoid)."""
    ex = Explanation(
        summary="BCELoss takes probabilities in [0, 1], but its input holds raw scores",
        code="loss-bce-logits",
    )
    layer = _last_linear(ctx, out)
    if layer is not None:
        ex.details.append(
            f"it comes from {_layer_name(ctx, layer)} (Linear) with no sigmoid after it"
        )
    ex.fixes.append(
        "use nn.BCEWithLogitsLoss (F.binary_cross_entropy_with_logits) on the raw scores: "
        "it applies the sigmoid itself, more stably"
    )
    ex.fixes.append("or torch.sigmoid(scores) before BCELoss")
    return ex


def _values_per_sample(
    ctx: Context, ex: Explanation, out: torch.Tensor, target: torch.Tensor
) -> Explanation:
    """A regression output with k values per sample against one target value each: the
    layer that makes the output is sized for k (the data has one)."""
    k = out.shape[-1]
    ex.details.append(
        f"the output has {k} values per sample, the target one: the layer that makes the "
        "output decides how many"
    )
    layer = _last_linear(ctx, out)
    if layer is not None and layer.module.out_features == k:
        name = _layer_name(ctx, layer)
        ex.replace_layer(
            f"{name} = nn.Linear({layer.module.in_features}, 1), then output.squeeze(-1) gives "
            f"{fmt(tuple(target.shape))} like the target",
            layer.module,
            out_features=1,
        )
    else:
        ex.fixes.append("make the last layer output 1 value (out_features=1), then .squeeze(-1)")
    ex.fixes.append(
        f"or, if {k} outputs per sample are meant, the target needs them too: "
        f"{fmt(tuple(out.shape))}"
    )
    return ex


def _class_loss(
    ctx: Context, kind: str, out: torch.Tensor, target: torch.Tensor
) -> Explanation | None:
    so, st = fmt(tuple(out.shape)), fmt(tuple(target.shape))
    if target.is_floating_point() and out.dim() == target.dim() + 1:
        dtype = str(target.dtype).removeprefix("torch.")
        return Explanation(
            summary=f"{kind} reads the target {st} as class indices (it has one dim fewer "
            f"than the output {so}), but they are {dtype}: indices must be int64",
            details=[
                f"{kind} takes either class indices (int64, one per sample) or class "
                "probabilities with the output's shape (float)"
            ],
            fixes=[f"target = target.long() (values in 0..{out.shape[1] - 1})"],
            code="loss-target-dtype",
        )
    same_rank = target.is_floating_point() and out.dim() == target.dim() >= 2
    if same_rank and out.shape[0] == target.shape[0] and out.shape[1] != target.shape[1]:
        return _class_probabilities(ctx, kind, out, target)
    if out.dim() == 3 and target.dim() == 2 and tuple(out.shape[:2]) == tuple(target.shape):
        b, t, v = out.shape
        return Explanation(
            summary=f"{kind} reads classes from dim 1: logits {so} are taken as {t} classes at "
            f"{v} positions, but the target {st} has {t} positions",
            details=[
                f"for (batch, seq, vocab) = ({b}, {t}, {v}) logits the classes are the "
                f"last dim ({v})"
            ],
            fixes=[
                f"logits.permute(0, 2, 1) gives ({b}, {v}, {t}), the (N, C, d) layout {kind} wants",
                f"or flatten both: loss(logits.view(-1, {v}), target.view(-1))",
            ],
            code="loss-class-dim",
        )
    if out.shape[0] != target.shape[0]:
        ex = Explanation(
            summary=f"{kind}: the output has a batch of {out.shape[0]} but the target "
            f"{target.shape[0]}: {so} vs {st}",
            code="loss-batch",
        )
        return _batch_mismatch(ctx, ex, out, target)
    if not target.is_floating_point() and target.numel():
        return _class_range(ctx, kind, out, target)
    return None


def _class_range(
    ctx: Context, kind: str, out: torch.Tensor, target: torch.Tensor
) -> Explanation | None:
    """A target class the output has no logit for. When the targets are the model's own
    input (`labels`), the labels are wrong for the model: say so, with the config."""
    classes = out.shape[1] if out.dim() > 1 else out.shape[0]
    name, given = _labels_input(ctx, target)
    values = target if plain_values(target) else given
    if values is None or not plain_values(values):
        return None
    hi = _largest_class(values)
    if hi < classes:
        return None
    if name is None:
        return Explanation(
            summary=f"{kind}: target class {hi} but the output has only {classes} classes",
            fixes=[f"the last layer must output {hi + 1} classes (out_features={hi + 1})"],
            code="loss-class-range",
        )
    config = config_of(ctx)
    expects = expectation(config, classes, ("vocab_size", "num_labels"))
    setting = config_name(config, "num_labels") if "num_labels" in expects else "out_features"
    return Explanation(
        summary=f"{name} holds class {hi} but the model predicts {classes} classes{expects}: "
        f"{name} does not fit this model",
        details=[f"{kind} reads {name} as class indices into the {classes} logits"],
        fixes=[
            f"{name} must hold values in [0, {classes}) (-100 marks a position to ignore): "
            "map the labels, or use the tokenizer or label set that goes with this model",
            f"or, if the model is meant to predict {hi + 1} classes, build it for them "
            f"({setting}={hi + 1})",
        ],
        code="input-labels",
    )


def _class_probabilities(
    ctx: Context, kind: str, out: torch.Tensor, target: torch.Tensor
) -> Explanation:
    """A float target read as class probabilities (a one-hot encoding) over another number
    of classes than the logits have. The data says how many classes there are: the layer
    that makes the logits is resized to them, or the encoding is turned into indices."""
    n, k, c = out.shape[0], out.shape[1], target.shape[1]
    ex = Explanation(
        summary=f"{kind}: the target {fmt(tuple(target.shape))} holds probabilities over {c} "
        f"classes but the output {fmt(tuple(out.shape))} has {k}",
        details=[
            f"a float target with the output's shape is read as class probabilities "
            f"(one-hot rows); {kind} needs as many columns as the output has classes"
        ],
        code="loss-class-count",
    )
    layer = _last_linear(ctx, out)
    if layer is not None and layer.module.out_features == k:
        name = _layer_name(ctx, layer)
        ex.replace_layer(
            f"{name} = nn.Linear({layer.module.in_features}, {c}): {c} classes, as the target has",
            layer.module,
            out_features=c,
        )
    else:
        ex.fixes.append(f"make the last layer output {c} classes (out_features={c})")
    ex.fixes.append(
        f"or, if {k} classes is right, the target's encoding is off: class indices "
        f"target.argmax(1) gives ({n},), then check they are < {k}"
    )
    return ex


def _last_linear(ctx: Context, out: torch.Tensor) -> Any:
    """The walk's tensor made by the Linear that gave `out` its last dim, if one did."""
    made = history(ctx, out)
    if made is None:
        return None
    return next((t for t in made.lineage() if isinstance(t.module, nn.Linear)), None)


def _layer_name(ctx: Context, made: Any) -> str:
    call = made.call
    if call is not None and getattr(call, "path", None):
        return str(call.path)
    for c in ctx.trace.calls:
        if ctx.live_module(c.seq) is made.module:
            return c.path or "model"
    root = ctx.live_module(0)
    if isinstance(root, nn.Module):
        for path, module in root.named_modules():
            if module is made.module:
                return path or "model"
    return "the last layer"


def _labels_input(ctx: Context, target: torch.Tensor) -> tuple[str | None, Any]:
    """The model input the target is (or is cut from), with its live value when at hand:
    `labels` of a Hugging Face model, or the forward's own argument the loss reads."""
    inputs = dict(named_inputs(ctx))
    live = dict(zip(_parameter_names(ctx), ctx.args, strict=False)) | dict(ctx.kwargs)
    value = history(ctx, target)
    if value is not None:
        root = list(value.lineage())[-1]
        if root.step is None and root.name in inputs and ctx.call.parent is None:
            return root.name, live.get(root.name)
    info = inputs.get("labels")
    if info is not None and info.dtype.startswith("int"):
        return "labels", live.get("labels")
    return None, None


def _parameter_names(ctx: Context) -> list[str]:
    forward = getattr(type(ctx.module), "forward", None)
    code = getattr(forward, "__code__", None)
    return list(code.co_varnames[1 : code.co_argcount]) if code is not None else []


def _largest_class(values: torch.Tensor) -> int:
    """The largest class index (-100, the ignored position, left out), read outside any
    dispatch mode a dry run holds (a fake mode cannot read values)."""
    from torch.utils._python_dispatch import _disable_current_modes

    with _disable_current_modes(), torch.no_grad():
        flat = values.flatten()
        if not flat.numel():
            return -1
        return int(torch.where(flat == -100, torch.zeros_like(flat), flat).max())


def plain_values(t: Any) -> bool:
    """A tensor whose values can be read: a plain tensor off the meta device."""
    return type(t) in (torch.Tensor, nn.Parameter) and t.device.type != "meta"


def _batch_mismatch(
    ctx: Context, ex: Explanation, out: torch.Tensor, target: torch.Tensor
) -> Explanation:
    root = ctx.trace.calls[0] if ctx.trace.calls else None
    data = first_tensor(root.inputs) if root is not None else None
    batch = data.shape[0] if data is not None and data.ndim >= 1 else None
    if batch is None or out.shape[0] == batch:
        if data is not None and seq_first_input(ctx, ex, data, target):
            return ex
        if target.dim() and target.shape[0] != out.shape[0]:
            ex.fixes.append(f"give the target the output's batch size ({out.shape[0]})")
        return ex
    ex.details.append(f"the model's input has a batch of {batch} but its output {out.shape[0]}")
    if explain_batch_change(ctx, ex, batch, out.shape[0], out):
        return ex
    ex.details.append("a reshape inside the model moved features into the batch dim")
    fold = find_fold(ctx.trace, batch)
    if fold is not None:
        _, before, line = fold
        per = product(before[1:])
        if line is not None:
            ex.line = line
        ex.fixes.append(
            f"flatten per sample: x.view(x.size(0), -1) gives ({batch}, {per}) = "
            f"{dims_product_text(before[1:])} features per sample, and size the next "
            f"layer for {per} inputs"
        )
    return ex


def find_fold(trace: Any, batch: int) -> tuple[Call, tuple[int, ...], Any] | None:
    """The first recorded reshape that turned a batch of `batch` into another batch size.

    Returns the call that received the reshaped tensor, the shape before the reshape, and the
    line that reshaped it.
    """
    for call in trace.calls:
        for value in call.inputs:
            info = first_tensor(value)
            if info is None or info.ndim == 0 or info.shape[0] == batch:
                continue
            base: Call | None = None
            before: tuple[int, ...] | None = None
            if info.view_of is not None:
                base = trace.calls[info.view_of]
                base_out = first_tensor(base.outputs)
                before = base_out.shape if base_out is not None else None
            elif info.producer is None and call.parent is not None:
                # reshaped from the enclosing call's own input (no module in between)
                parent_in = first_tensor(trace.calls[call.parent].inputs)
                if parent_in is not None and parent_in.numel == info.numel:
                    before = parent_in.shape
            if before and before[0] == batch:
                return call, before, reshape_line(trace, base, call)
    return None


def shape_maker(trace: Any, info: TensorInfo | None) -> Call | None:
    """The innermost call that gave a tensor its shape: its output has that shape, its input not.

    The producer of a model's output is often the root itself (a final sigmoid in forward);
    the layer that set the shape is the last descendant that changed it.
    """
    made = producer_call(trace, info)
    if made is None or info is None:
        return made
    for call in reversed(trace.calls[made.seq :]):
        if call.status != "ok" or not _descends(trace, call, made.seq):
            continue
        out, inp = first_tensor(call.outputs), first_tensor(call.inputs)
        if out is not None and out.shape == info.shape and (inp is None or inp.shape != out.shape):
            return call
    return made


def _descends(trace: Any, call: Call, ancestor: int) -> bool:
    seq: int | None = call.seq
    while seq is not None:
        if seq == ancestor:
            return True
        seq = trace.calls[seq].parent
    return False
