"""Short text for numbers, shapes and values: the vocabulary every view shares."""

from __future__ import annotations

import math

from inspector.engine.records import Call, Struct, TensorInfo, Value, format_shape


def number(x: float, digits: int = 4) -> str:
    """Compact: `0.3142`, `-12.5`, `3.1e-05`, `nan`, with `digits` significant digits."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    a = abs(x)
    if 1e-3 <= a < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.1e}"


def count(n: int) -> str:
    """`1,234,567` → `1.2M`; small numbers as they are."""
    if n < 10_000:
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def shape(value: Value) -> str:
    """The shape(s) of a described value: `(4, 3, 32, 32)`, `((2, 5), (2, 5))`, `{logits: ...}`."""
    if isinstance(value, TensorInfo):
        return format_shape(value.shape)
    if isinstance(value, tuple):
        parts = [shape(v) for v in value]
        if len(parts) == 1:
            return parts[0]
        return "(" + ", ".join(parts) + ")"
    if isinstance(value, Struct):
        return "{" + ", ".join(f"{k}: {shape(v)}" for k, v in value.fields) + "}"
    if value is None:
        return "None"
    return str(value)


def inputs_shape(call: Call) -> str:
    """The positional inputs' shapes; a single input without the extra parentheses."""
    if len(call.inputs) == 1:
        return shape(call.inputs[0])
    if not call.inputs and call.kwargs is not None:
        return shape(call.kwargs)
    return shape(call.inputs)


def io_shapes(call: Call) -> str:
    """`(4, 3, 32, 32) → (4, 6, 16, 16)`; a failed call ends in `✗`."""
    if call.status == "error":
        out = "✗"
    elif call.status == "running":
        out = "…"
    else:
        out = shape(call.outputs)
    return f"{inputs_shape(call)} → {out}"


def grad_text(call: Call) -> str:
    """`∇ 3.1e-04`: the RMS of the gradient of the call's first output, `∇ NaN` when it has
    NaN or Inf, "" before the backward pass reached the call."""
    grad = call.grad.output if call.grad is not None else None
    if grad is None:
        return ""
    if not grad.finite:
        return "∇ NaN" if grad.nan else "∇ Inf"
    n = grad.numel
    var = grad.std * grad.std * ((n - 1) / n if n > 1 else 0.0)
    return f"∇ {number(math.sqrt(grad.mean * grad.mean + var), 2)}"
