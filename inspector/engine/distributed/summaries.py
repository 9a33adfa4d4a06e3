"""Compact, JSON-ready summaries of what one rank saw in a pass, for comparing ranks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from inspector.engine.records import Call, Struct, Value, tensors_in

MAX_TENSORS = 8  # tensors summarised per side (inputs, outputs) of one call


def parameter_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Every parameter's full shape by name, as `model.named_parameters()` gives them.

    A sharded parameter (an FSDP2 DTensor) reports its global shape, so ranks compare alike.
    """
    return {name: list(p.shape) for name, p in model.named_parameters()}


def _tensor_side(values: Iterable[Value]) -> tuple[list[list[int]], list[str]]:
    shapes: list[list[int]] = []
    dtypes: list[str] = []
    for info in tensors_in(tuple(values)):
        if len(shapes) == MAX_TENSORS:
            break
        shapes.append(list(info.shape))
        dtypes.append(info.dtype)
    return shapes, dtypes


def call_summaries(calls: Iterable[Call], model: nn.Module | None = None) -> list[dict[str, Any]]:
    """Compact, JSON-ready summaries of module calls, in the calls' order.

    Each holds the path and call index, the module type, the input and output tensor shapes
    and dtypes (the first MAX_TENSORS of each side), the status and, when `model` is given
    (the root the paths are named from), the shapes of the module's own parameters.
    """
    modules = dict(model.named_modules()) if model is not None else {}
    out = []
    for call in calls:
        ins: list[Value] = list(call.inputs)
        if isinstance(call.kwargs, Struct):
            ins.append(call.kwargs)
        in_shapes, in_dtypes = _tensor_side(ins)
        out_shapes, out_dtypes = _tensor_side([call.outputs])
        module = modules.get(call.path)
        own = (
            {n: list(p.shape) for n, p in module.named_parameters(recurse=False)}
            if module is not None
            else {}
        )
        out.append(
            {
                "path": call.path,
                "index": call.index,
                "type": call.type,
                "in": in_shapes,
                "in_dtypes": in_dtypes,
                "params": own,
                "out": out_shapes,
                "out_dtypes": out_dtypes,
                "status": call.status,
            }
        )
    return out


def summarize(
    calls: Iterable[Call], model: nn.Module | None = None, **extra: Any
) -> dict[str, Any]:
    """A rank's summary of one pass: its call summaries, the model's parameter shapes (when
    `model` is given) and any JSON-ready `extra` fields (step, error text, ...)."""
    summary: dict[str, Any] = dict(extra)
    summary["calls"] = call_summaries(calls, model)
    if model is not None:
        summary["params"] = parameter_shapes(model)
    return summary
