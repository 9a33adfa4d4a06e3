"""A tensor of the failing op with its history: the lines that gave it its shape.

Two ways, both without running user code: the frame the error went through is walked up to
its failing line (`dataflow.Walk.frame`) and the failing expression's operands evaluated
there; or, for a tensor a recorded call returned, that call's forward is walked from its
recorded inputs (`dataflow.Walk.output`).
"""

from __future__ import annotations

import ast
import sys
from types import FrameType, FunctionType, TracebackType
from typing import TYPE_CHECKING, Any

import torch

from inspector.engine.capture.naming import is_library_file
from inspector.engine.diagnose.dataflow import (
    Tensor,
    Walk,
    inputs_as_values,
)
from inspector.engine.diagnose.dataflow_values import from_info
from inspector.engine.records import Struct

if TYPE_CHECKING:
    from inspector.engine.diagnose.context import Context
    from inspector.engine.records import Call


def history(ctx: Context, tensor: Any) -> Tensor | None:
    """`tensor`, a live operand of the failure, as the walk knows it (None: not known)."""
    if not isinstance(tensor, torch.Tensor):
        return None
    shape = tuple(tensor.shape)
    try:
        for value in _frame_operands(ctx):
            if isinstance(value, Tensor) and value.shape == shape and value.step is not None:
                return value
        return _from_record(ctx, tensor, shape)
    except Exception:  # a history is a bonus: never in the way of the diagnosis
        return None


def frame_operands(ctx: Context) -> list[Any]:
    """The failing expression's operands in the user's frame, as the walk knows them."""
    try:
        return _frame_operands(ctx)
    except Exception:  # a history is a bonus
        return []


def _frame_operands(ctx: Context) -> list[Any]:
    if "operands" in ctx.cache:
        return list(ctx.cache["operands"])
    found: list[Any] = []
    ctx.cache["operands"] = found
    entry = _user_entry(ctx.error.__traceback__) or _running_forward(ctx)
    if entry is None:
        return found
    frame, lineno, lasti = entry
    call, args, kwargs = _frame_call(ctx, frame.f_code)
    walk = Walk(ctx.trace, ctx.modules)
    stopped = walk.frame(frame, lineno, call, args, kwargs)
    if stopped is None:
        return found
    ctx.cache["stopped"] = stopped
    node = stopped.expression(frame.f_code, lasti)
    if node is None:
        return found
    parts = list(getattr(node, "args", ())) + [k.value for k in getattr(node, "keywords", ())]
    receiver = getattr(node, "func", None)
    if isinstance(receiver, ast.Attribute):  # x.masked_fill(m, v): the op's first operand is x
        head = stopped.value(receiver.value)
        if isinstance(head, Tensor):
            found.append(head)
    if not parts:  # a @, + or [] that raised: its operands, left to right
        parts = [getattr(node, a) for a in ("left", "right", "value") if hasattr(node, a)]
    found.extend(stopped.value(p) for p in parts)
    return found


def op_operands(ctx: Context) -> list[Any]:
    """The failing op's tensor operands, in order: the live tensor where the traceback gives
    it, else a meta tensor of the shape the walk found (an operand written as an expression,
    `torch.ones(x.shape[0])`, is not kept by any frame)."""
    if ctx.op is None:
        return []
    live = list(ctx.op.args) + list(ctx.op.kwargs.values())
    walked = _frame_operands(ctx) if any(not isinstance(a, torch.Tensor) for a in live) else []
    out: list[Any] = []
    for i, value in enumerate(live):
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif i < len(walked) and isinstance(walked[i], Tensor) and len(walked) == len(live):
            out.append(walked[i].meta())
    return out


def _user_entry(tb: TracebackType | None) -> tuple[FrameType, int, int] | None:
    """The deepest frame of the user's code the error went through: (frame, line, lasti)."""
    found = None
    while tb is not None:
        if not is_library_file(tb.tb_frame.f_code.co_filename):
            found = (tb.tb_frame, tb.tb_lineno, tb.tb_lasti)
        tb = tb.tb_next
    return found


def _running_forward(ctx: Context) -> tuple[FrameType, int, int] | None:
    """While the failing call is still open (a dry run records a failure and runs on), the
    forward that called it is on the live stack, not in the error's traceback: the nearest
    frame that is the forward of one of the failing call's enclosing calls."""
    forwards = set()
    seq: int | None = ctx.call.seq  # an op of the call's own forward, or a child it called
    while seq is not None:
        module = ctx.live_module(seq)
        code = getattr(getattr(type(module), "forward", None), "__code__", None)
        if code is not None:
            forwards.add(code)
        seq = ctx.trace.calls[seq].parent
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in forwards:
            return frame, frame.f_lineno, frame.f_lasti
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _frame_call(ctx: Context, code: Any) -> tuple[Call | None, Any, Any]:
    """The recorded call whose forward the frame runs (its inputs, when known), or the
    innermost call of the user's own module that holds it."""
    seq: int | None = ctx.call.seq
    holder = None
    while seq is not None:
        call = ctx.trace.calls[seq]
        module = ctx.live_module(seq)
        forward = getattr(type(module), "forward", None)
        if isinstance(forward, FunctionType) and forward.__code__ is code:
            if seq == ctx.call.seq:
                args, kwargs = inputs_as_values(ctx.args, ctx.kwargs)
                return call, args, kwargs
            return call, *recorded_inputs(call)
        if holder is None and module is not None and not _library(module):
            holder = call
        seq = call.parent
    return holder, None, None


def recorded_inputs(call: Call) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A recorded call's inputs as the walk holds them (shapes, no history)."""
    args = tuple(from_info(v, None, (), None, None) for v in call.inputs)
    kwargs: dict[str, Any] = {}
    if isinstance(call.kwargs, Struct):
        kwargs = {k: from_info(v, None, (), None, None) for k, v in call.kwargs.fields}
    return args, kwargs


def _library(module: Any) -> bool:
    return (type(module).__module__ or "").startswith("torch.")


def _from_record(ctx: Context, tensor: torch.Tensor, shape: tuple[int, ...]) -> Tensor | None:
    info = ctx.lookup(tensor) if ctx.lookup is not None else None
    seq = getattr(info, "producer", None)
    if seq is None or seq >= len(ctx.trace.calls):
        return None
    out = Walk(ctx.trace, ctx.modules).output(ctx.trace.calls[seq])
    for value in out if isinstance(out, (tuple, list)) else (out,):
        if isinstance(value, Tensor) and value.shape == shape:
            return value
    return None
