"""A fix that replaces a layer is checked before it is offered.

The model's forward is walked again (dataflow.py: no user code runs) from the recorded inputs
to its output, with the layer replaced by the fixed one on meta tensors. Layers before it
give their recorded outputs; everything after it is worked out by torch's own shape rules. A
fix after which an op still fails is not offered: the explanation says what fails next
instead. A fix the walk cannot follow to the output is offered as it was, unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType
from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.context import Context, Explanation, short_file
from inspector.engine.diagnose.dataflow import Walk
from inspector.engine.diagnose.dataflow_values import (
    UNKNOWN,
    Failures,
    Obj,
    Tensor,
    from_info,
)
from inspector.engine.records import Struct
from inspector.engine.records import format_shape as fmt


@dataclass
class Replacement:
    """A fix that puts another layer in the place of one of the model's."""

    fix: str  # the fix as offered
    module: nn.Module  # the live layer it replaces
    build: Callable[[], nn.Module | None]  # the fixed layer, on meta (None: cannot build)


@dataclass
class InputChange:
    """A fix that changes one of the model's inputs (its layout, its channels)."""

    fix: str
    name: str  # the input, as the model's forward names it
    change: Callable[[torch.Tensor], torch.Tensor]  # on a meta tensor of the input's shape


def check_fixes(ctx: Context, ex: Explanation) -> None:
    """Check each layer replacement of `ex` on the walked pass; drop those after which the
    pass still fails, and say what the first one that holds gives."""
    for replacement in list(ex.replacements):
        try:
            verdict = _walk_with(ctx, replacement)
        except Exception:  # a check that cannot run leaves the fix as it was
            continue
        if verdict is None:
            continue
        failed, output = verdict
        if failed is not None:
            if replacement.fix in ex.fixes:
                ex.fixes.remove(replacement.fix)
            ex.details.append(f"{replacement.fix} alone does not make the pass run: {failed}")
            if ex.fixes and ex.fixes[0].startswith("or "):  # the alternative is now the fix
                ex.fixes[0] = ex.fixes[0].removeprefix("or ").removeprefix(", ")
        elif output is not None and not any(d.startswith("checked") for d in ex.details):
            change = (
                _layer_text(replacement.fix)
                if isinstance(replacement, Replacement)
                else f"{replacement.name} changed so"
            )
            ex.details.append(
                f"checked on the recorded shapes: with {change} the forward runs to its "
                f"output {output}"
            )


def _layer_text(fix: str) -> str:
    """`fc1 = nn.Linear(320, 50)` out of the fix's words."""
    start = fix.find("nn.")
    open_at = fix.find("(", start)
    if start < 0 or open_at < 0:
        return fix
    depth = 0
    for i in range(open_at, len(fix)):
        depth += {"(": 1, ")": -1}.get(fix[i], 0)
        if depth == 0:
            return fix[: i + 1]
    return fix


def _walk_with(
    ctx: Context, fix: Replacement | InputChange
) -> tuple[str | None, str | None] | None:
    """(what fails next or None, the output's shape or None); None when the walk cannot
    follow the model from its inputs."""
    if not ctx.trace.calls:
        return None
    root_call = ctx.trace.calls[0]
    root = ctx.live_module(0)
    forward = getattr(type(root), "forward", None)
    if not isinstance(root, nn.Module) or not isinstance(forward, FunctionType):
        return None
    inputs = [from_info(v, None, (), None, None) for v in root_call.inputs]
    kwargs: dict[str, Any] = {}
    if isinstance(root_call.kwargs, Struct):
        kwargs = {k: from_info(v, None, (), None, None) for k, v in root_call.kwargs.fields}
    walk = Walk(ctx.trace, ctx.modules)
    if isinstance(fix, Replacement):
        built = fix.build()
        if built is None:
            return None
        walk.overrides = {id(fix.module): built}
    elif not _change_input(forward, inputs, kwargs, fix):
        return None
    walk.verifying = True
    found: list[Any] = []
    previous, Failures.active = Failures.active, found
    try:
        out = walk.walk_function(forward, (Obj(root), *inputs), kwargs, 1, root_call)
    finally:
        Failures.active = previous
    if found:
        step, message = found[0]
        where = (
            f"then `{step.expr}` at {short_file(step.file)}:{step.lineno} fails"
            if step
            else ("then a layer after it fails")
        )
        return f"{where}: {message}", None
    if isinstance(out, Tensor) and out.known:
        return None, fmt(out.shape)
    return None


def _change_input(forward: FunctionType, inputs: list[Any], kwargs: dict[str, Any],
                  fix: InputChange) -> bool:  # fmt: skip
    """Apply `fix` to the walk's copy of the named input; False when it is not there."""
    code = forward.__code__
    names = code.co_varnames[1 : code.co_argcount]  # after self
    index = names.index(fix.name) if fix.name in names else len(inputs)
    if fix.name in kwargs:
        value = kwargs[fix.name]
    elif index < len(inputs):
        value = inputs[index]
    else:
        return False
    if not isinstance(value, Tensor) or not value.known:
        return False
    changed = fix.change(value.meta())
    made = Tensor(tuple(changed.shape), changed.dtype, name=fix.name)
    if fix.name in kwargs:
        kwargs[fix.name] = made
    else:
        inputs[index] = made
    return True


def resized(module: nn.Module, **changes: int) -> nn.Module | None:
    """The layer as the fix builds it, on meta: the same kind and settings, with `changes`
    (in_features, in_channels, num_features, normalized_shape, input_size, num_embeddings)."""
    meta = torch.device("meta")
    try:
        if type(module) is nn.Linear:
            return nn.Linear(changes.get("in_features", module.in_features),
                             changes.get("out_features", module.out_features),
                             bias=module.bias is not None, device=meta,
                             dtype=module.weight.dtype)  # fmt: skip
        if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
            return type(module)(
                changes.get("in_channels", module.in_channels),
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
                device=meta,
                dtype=module.weight.dtype,
            )
        if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            return type(module)(changes.get("num_features", module.num_features),
                                eps=module.eps, momentum=module.momentum, affine=module.affine,
                                track_running_stats=module.track_running_stats,
                                device=meta)  # fmt: skip
        if type(module) is nn.LayerNorm and "normalized_shape" in changes:
            affine = module.elementwise_affine
            shape = changes["normalized_shape"]
            return nn.LayerNorm(shape, eps=module.eps, elementwise_affine=affine, device=meta)
        if type(module) in (nn.RNN, nn.LSTM, nn.GRU):
            return type(module)(changes.get("input_size", module.input_size),
                                module.hidden_size, num_layers=module.num_layers,
                                bias=module.bias, batch_first=module.batch_first,
                                bidirectional=module.bidirectional, device=meta)  # fmt: skip
        if type(module) is nn.Embedding:
            return nn.Embedding(changes.get("num_embeddings", module.num_embeddings),
                                module.embedding_dim, padding_idx=module.padding_idx,
                                device=meta)  # fmt: skip
    except Exception:
        return None
    return None


__all__ = ["UNKNOWN", "InputChange", "Replacement", "check_fixes", "resized"]
