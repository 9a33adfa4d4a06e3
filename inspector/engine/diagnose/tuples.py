"""A layer given a tuple where it takes a tensor: the value of a module that returns several.

`out = self.lstm(x)` holds (output, (h_n, c_n)); passing `out` on to a Linear raises
torch's "must be Tensor, not tuple". The failing expression's operand is followed back
(history.py) to the call that returned it; a recurrent layer, an attention layer or any
module returning a tuple gets the unpacking that picks its output.
"""

from __future__ import annotations

import linecache
from typing import Any

from torch import nn

from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.dataflow_values import Tensor
from inspector.engine.diagnose.history import frame_operands
from inspector.engine.records import SourceLine
from inspector.engine.records import format_shape as fmt


def explain_tuple_input(ctx: Context) -> Explanation | None:
    if not isinstance(ctx.error, TypeError) or "tuple" not in ctx.message:
        return None
    given = ctx.args[0] if ctx.args else None
    if type(given) is not tuple or not given:
        return None
    name = ctx.name
    walked = next((v for v in frame_operands(ctx) if isinstance(v, tuple)), None)
    maker = _maker(walked)
    first = given[0]
    shape = fmt(tuple(first.shape)) if hasattr(first, "shape") else "?"
    made = _made_at(walked)
    if isinstance(maker, nn.RNNBase):
        kind = type(maker).__name__
        state = "(h_n, c_n)" if isinstance(maker, nn.LSTM) else "h_n"
        ex = Explanation(
            summary=f"{name} gets a tuple, not a tensor: {kind} returns (output, {state})",
            details=[f"the output is the tuple's first item, {shape}"],
            fixes=[f"unpack it: out, _ = self.{_attr(ctx, maker)}(x), then {name}(out)"],
            code="tuple-input",
            line=made,
        )
        if hasattr(first, "dim") and first.dim() == 3:
            last = (first.shape[0], first.shape[2]) if maker.batch_first else None
            if last is not None:
                ex.fixes.append(
                    f"or, for one prediction per sequence, the last step: out[:, -1] gives "
                    f"{fmt(last)}"
                )
        return ex
    if isinstance(maker, nn.MultiheadAttention):
        return Explanation(
            summary=f"{name} gets a tuple, not a tensor: MultiheadAttention returns "
            "(attn_output, attn_weights)",
            fixes=[f"unpack it: out, _ = self.{_attr(ctx, maker)}(q, k, v), then {name}(out)"],
            code="tuple-input",
            line=made,
        )
    return Explanation(
        summary=f"{name} gets a tuple of {len(given)} values where it takes a tensor",
        details=[f"its first item is {shape}"],
        fixes=["pass the tensor the layer needs: the tuple's first item, x[0], if that is the "
               "output"],
        code="tuple-input",
    )  # fmt: skip


def _maker(walked: Any) -> Any:
    """The module whose call returned the tuple, from the walk."""
    if not isinstance(walked, tuple):
        return None
    for item in walked:
        if isinstance(item, Tensor) and item.module is not None:
            return item.module
        if isinstance(item, tuple):
            found = _maker(item)
            if found is not None:
                return found
    return None


def _made_at(walked: Any) -> SourceLine | None:
    """The line whose call returned the tuple (`out = self.lstm(x)`)."""
    if not isinstance(walked, tuple):
        return None
    for item in walked:
        if isinstance(item, Tensor) and item.step is not None:
            step = item.step
            text = linecache.getline(step.file, step.lineno).rstrip("\n")
            return SourceLine(step.file, step.lineno, text, step.function)
    return None


def _attr(ctx: Context, module: nn.Module) -> str:
    """The attribute name the caller holds `module` under (`lstm`)."""
    for call in ctx.trace.calls:
        if ctx.live_module(call.seq) is module:
            return call.path.rsplit(".", 1)[-1] or "model"
    root = ctx.live_module(0)
    if isinstance(root, nn.Module):
        for path, m in root.named_modules():
            if m is module:
                return path.rsplit(".", 1)[-1]
    return type(module).__name__.lower()
