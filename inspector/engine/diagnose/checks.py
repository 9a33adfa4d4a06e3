"""A check that raised: the user's own `assert` on a shape, or a `raise ValueError` under an
`if` in the user's or a library's code.

The check's condition is read from the raising frame's source (the `assert` statement, or the
`if` the `raise` sits under) and its two sides are evaluated as metadata reads on the frame's
variables (`x.shape[-1]`, `self.dim`), never by running code. The finding names the tensors
of the frame with their shapes and says what value would pass the check.
"""

from __future__ import annotations

import ast
import inspect
import linecache
from types import FrameType, TracebackType
from typing import Any

import torch

from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.diagnose.inputs import named_inputs
from inspector.engine.diagnose.operands import UNKNOWN, Operands
from inspector.engine.records import format_shape as fmt

_NEGATE = {ast.Eq: "!=", ast.NotEq: "==", ast.Lt: ">=", ast.LtE: ">", ast.Gt: "<=", ast.GtE: "<"}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def explain_check(ctx: Context) -> Explanation | None:
    if not isinstance(ctx.error, (AssertionError, ValueError, TypeError, RuntimeError)):
        return None
    tb = _last(ctx.error.__traceback__)
    if tb is None:
        return None
    frame = tb.tb_frame
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno).strip()
    if not line.startswith(("raise", "assert ")):
        return None  # an op raised: the op families explain it
    found = _condition(frame.f_code.co_filename, tb.tb_lineno)
    tensors = _frame_tensors(frame)
    if found is None and not tensors:
        return None
    where = ctx.call.path or "the model"
    summary = str(ctx.message).strip().splitlines()[0] if str(ctx.message).strip() else ""
    ex = Explanation(summary=f"a check in {where} failed: {summary}", code="failed-check")
    if tensors:
        inputs = {info.shape: name for name, info in named_inputs(ctx)}
        shown = []
        for name, t in tensors[:6]:
            text = f"{name} {fmt(tuple(t.shape))}"
            if inputs.get(tuple(t.shape)) == name:
                text += " (a model input)"
            shown.append(text)
        ex.details.append("tensors at the check: " + ", ".join(shown))
    if found is None:
        ex.fixes.append("make the tensors above satisfy the check in the raising line")
        return ex
    test, holds = found
    read = _sides(frame, test)
    given = _none_tests(frame, test)
    if read is None and given is not None:
        return _which_given(ex, test, holds, _as_the_model_names_them(ctx, given))
    if read is None:
        cond = ast.unparse(test)
        ex.details.append(f"the check {'asserts' if holds else 'raises when'} {cond}")
        ex.fixes.append(
            f"change the inputs so that `{cond}` holds"
            if holds
            else f"change the inputs so that `{cond}` is false"
        )
        return ex
    left_src, op, right_src, left, right = read
    wanted = _SYMBOL[type(op)] if holds else _NEGATE[type(op)]
    ex.details.append(
        f"the check {'asserts' if holds else 'raises when'} {ast.unparse(test)}: {left_src} is "
        f"{_show(left)}, {right_src} is {_show(right)}"
    )
    fix = f"{left_src} must be {wanted} {_show(right)}" if wanted != "==" else (
        f"{left_src} must be {_show(right)}"
    )  # fmt: skip
    shape = _shape_that_passes(frame, test.left if isinstance(test, ast.Compare) else None, right)
    if shape is not None:
        fix += f": {shape[0]} must be {fmt(shape[1])}, not {fmt(shape[2])}"
    ex.fixes.append(fix)
    return ex


def _none_tests(frame: FrameType, test: ast.expr) -> dict[str, bool] | None:
    """For a condition made of `x is None` / `x is not None` tests, which names are given
    (not None) in the frame; None when the condition is anything else."""
    names: dict[str, bool] = {}
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            right = node.comparators[0]
            if isinstance(node.ops[0], (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant) \
                    and right.value is None and isinstance(node.left, ast.Name):  # fmt: skip
                name = node.left.id
                if name not in frame.f_locals:
                    return None
                names[name] = frame.f_locals[name] is not None
            else:
                return None
    allowed = (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Constant,
               ast.And, ast.Or, ast.Not, ast.BitXor, ast.Is, ast.IsNot, ast.Load)  # fmt: skip
    if not names or not all(isinstance(n, allowed) for n in ast.walk(test)):
        return None
    return names


def _as_the_model_names_them(ctx: Context, given: dict[str, bool]) -> dict[str, bool]:
    """A check in a submodule (a seq2seq model's `decoder`) on arguments the user passes to
    the model under a prefixed name (`decoder_input_ids`): the model's names."""
    if ctx.call.parent is None:
        return given
    prefix = ctx.call.path.rsplit(".", 1)[-1]
    root = ctx.live_module(0)
    try:  # through a decorator's functools.wraps to the forward as written
        params = set(inspect.signature(type(root).forward).parameters)
    except (TypeError, ValueError, AttributeError):
        return given
    renamed = {f"{prefix}_{name}": value for name, value in given.items()}
    return renamed if all(name in params for name in renamed) else given


def _which_given(ex: Explanation, test: ast.expr, holds: bool,
                 given: dict[str, bool]) -> Explanation:  # fmt: skip
    """A check on which arguments are passed: say which are, and what the check wants."""
    passed = [n for n, v in given.items() if v]
    missing = [n for n, v in given.items() if not v]
    words = []
    if passed:
        words.append(", ".join(passed) + (" is" if len(passed) == 1 else " are") + " passed")
    if missing:
        words.append(", ".join(missing) + (" is" if len(missing) == 1 else " are") + " not")
    cond = ast.unparse(test)
    ex.details.append(f"the check {'asserts' if holds else 'raises when'} {cond}: "
                      + "; ".join(words))  # fmt: skip
    xor = isinstance(test, ast.BinOp) and isinstance(test.op, ast.BitXor)
    if xor and len(given) == 2:
        a, b = given
        ex.fixes.append(
            f"pass exactly one of {a} and {b}"
            + (" (both are passed: drop one)" if len(passed) == 2 else " (neither is passed)")
        )
        if not passed and a.startswith("decoder_"):
            ex.fixes.append(
                "or pass labels: a sequence-to-sequence model makes decoder_input_ids from "
                "them (shifted right)"
            )
    elif passed and not holds:
        ex.fixes.append(f"this call does not take {', '.join(passed)} here: leave it out")
    else:
        ex.fixes.append(f"pass {', '.join(missing) or 'the arguments'} the check asks for")
    return ex


def _last(tb: TracebackType | None) -> TracebackType | None:
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last


def _condition(filename: str, lineno: int) -> tuple[ast.expr, bool] | None:
    """The checked condition and whether it must hold (assert) or held (raise under if)."""
    text = linecache.getline(filename, lineno)
    stripped = text.strip()
    if stripped.startswith("assert "):
        try:
            node = ast.parse(stripped).body[0]
        except (SyntaxError, IndexError):
            return None
        return (node.test, True) if isinstance(node, ast.Assert) else None
    if not stripped.startswith("raise"):
        return None
    indent = len(text) - len(text.lstrip())
    for n in range(lineno - 1, max(0, lineno - 8), -1):
        line = linecache.getline(filename, n)
        head = line.strip()
        if not head or len(line) - len(line.lstrip()) >= indent:
            continue
        if head.startswith(("if ", "elif ")) and head.endswith(":"):
            source = head.removeprefix("el") + "\n    pass\n"
            try:
                node = ast.parse(source).body[0]
            except (SyntaxError, IndexError):
                return None
            return (node.test, False) if isinstance(node, ast.If) else None
        return None
    return None


def _sides(frame: FrameType, test: ast.expr) -> tuple[str, ast.cmpop, str, Any, Any] | None:
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    op = test.ops[0]
    if type(op) not in _SYMBOL:
        return None
    reader = Operands(frame)
    left, right = reader.value(test.left), reader.value(test.comparators[0])
    if left is UNKNOWN or right is UNKNOWN:
        return None
    return ast.unparse(test.left), op, ast.unparse(test.comparators[0]), left, right


def _show(value: Any) -> str:
    if isinstance(value, torch.Size):
        return fmt(tuple(value))
    if isinstance(value, torch.Tensor):
        return f"a tensor {fmt(tuple(value.shape))}"
    return repr(value)


def _shape_that_passes(
    frame: FrameType, left: ast.expr | None, right: Any
) -> tuple[str, tuple[int, ...], tuple[int, ...]] | None:
    """`x.shape[-1]` against 64 with x (4, 48): x must be (4, 64)."""
    if left is None or not isinstance(right, int):
        return None
    if not isinstance(left, ast.Subscript) or not isinstance(left.value, ast.Attribute):
        return None
    attr = left.value
    if attr.attr not in ("shape",) or not isinstance(attr.value, ast.Name):
        return None
    t = frame.f_locals.get(attr.value.id)
    index = Operands(frame).value(left.slice)
    if not isinstance(t, torch.Tensor) or not isinstance(index, int):
        return None
    shape = list(t.shape)
    if not -len(shape) <= index < len(shape):
        return None
    shape[index] = right
    return attr.value.id, tuple(shape), tuple(t.shape)


def _frame_tensors(frame: FrameType) -> list[tuple[str, torch.Tensor]]:
    found = []
    for name, value in frame.f_locals.items():
        if name != "self" and isinstance(value, torch.Tensor) and not name.startswith("_"):
            found.append((name, value))
    return found
