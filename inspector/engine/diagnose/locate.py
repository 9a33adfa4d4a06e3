"""Where a pass failed: the user's source line and the torch op with its operand shapes.

Everything comes from the exception's own traceback, read after the fact; no user code runs
again. The line is the deepest frame outside torch and the inspector (the `x.view(...)` in a
forward, or the `self.fc1(x)` that called a built-in layer). The op is the expression that
raised in the deepest frame that is not torch's own plumbing (torch.nn's layers count: their
`F.linear(input, self.weight, self.bias)` is the op): the frame's last instruction has exact
source columns (PEP 657), which pick the call or operator out of its line, and its operands
are looked up in the frame's variables. Looking up reads dictionaries and tensor metadata
only: no property, `__getattr__`, `__torch_function__` or other user code is ever called.
"""

from __future__ import annotations

import ast
import builtins
import linecache
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, ModuleType, TracebackType
from typing import Any

import torch
from torch import nn

from inspector.engine.describe import Describer
from inspector.engine.naming import is_library_file, source_line
from inspector.engine.records import OpInfo, SourceLine

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_LAYERS_DIR = os.path.join(_TORCH_DIR, "nn", "modules") + os.sep
_MODULE_PY = os.path.join(_LAYERS_DIR, "module.py")
_INSPECTOR_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def user_line(tb: TracebackType | None) -> SourceLine | None:
    """The deepest traceback frame that is the user's code."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_library_file(code.co_filename):
            found = source_line(code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


@dataclass
class FailedOp:
    """The torch function that raised, with its live arguments (kept only for diagnosis).

    An operand that could not be read without running code is `UNKNOWN`.
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: BaseException
    line: SourceLine | None

    def info(self) -> OpInfo:
        describe = Describer(stats=False).describe
        operands = tuple(describe(a) for a in self.args)
        kwargs = tuple((k, describe(v)) for k, v in self.kwargs.items())
        return OpInfo(name=self.name, operands=operands, kwargs=kwargs)


class _Unknown:
    """An operand the traceback does not give without running code."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN: Any = _Unknown()


def op_name(func: Callable[..., Any]) -> str:
    """'linear', 'view', 'conv2d', 'cat'... from a torch function or Tensor method."""
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # properties such as Tensor.shape go through __get__
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name.strip("_") if name.startswith("__") else name


def _plumbing(filename: str) -> bool:
    """torch's own code between an op and its caller (torch.nn's layers are not: their
    forward holds the op a layer runs), and the inspector's."""
    if filename.startswith(_INSPECTOR_DIR):
        return True
    if not filename.startswith(_TORCH_DIR):
        return False
    return not filename.startswith(_LAYERS_DIR) or filename == _MODULE_PY


ModuleOutput = Callable[[nn.Module], Any]


def failing_op(exc: BaseException, outputs: ModuleOutput | None = None) -> FailedOp | None:
    """The op that raised `exc`, read from its traceback; None when the error was raised by
    Python code (a `raise`, an assert) rather than by an op, or when it cannot be read.

    `outputs` gives the recorded output of a module called inside the failing expression
    (`torch.cat([self.up(x), skip])`): a stand-in tensor of that shape, dtype and device.
    """
    try:
        return _failing_op(exc, outputs)
    except Exception:  # the explanation is a bonus: never let it hide the user's error
        return None


def _failing_op(exc: BaseException, outputs: ModuleOutput | None) -> FailedOp | None:
    tb = exc.__traceback__
    chosen: TracebackType | None = None
    while tb is not None:
        if not _plumbing(tb.tb_frame.f_code.co_filename):
            chosen = tb
        tb = tb.tb_next
    if chosen is None:
        return None
    frame = chosen.tb_frame
    code = frame.f_code
    node = _expression_at(code, chosen.tb_lasti)
    if node is None:
        return None
    found = _Operands(frame, outputs).op(node)
    if found is None:
        return None
    name, args, kwargs = found
    line = source_line(code.co_filename, chosen.tb_lineno, code.co_name)
    return FailedOp(name, args, kwargs, exc, line)


def _expression_at(code: Any, lasti: int) -> ast.expr | None:
    """The expression whose evaluation the instruction at byte offset `lasti` performs."""
    if lasti < 0:
        return None
    positions = list(code.co_positions())
    index = lasti // 2
    if index >= len(positions):
        return None
    lineno, end_lineno, col, end_col = positions[index]
    if None in (lineno, end_lineno, col, end_col):
        return None
    lines = [
        linecache.getline(code.co_filename, n).encode("utf-8")
        for n in range(lineno, end_lineno + 1)
    ]
    if not lines or not lines[0]:
        return None
    if len(lines) == 1:
        text = lines[0][col:end_col]
    else:
        text = lines[0][col:] + b"".join(lines[1:-1]) + lines[-1][:end_col]
    try:
        tree = ast.parse(b"(" + text.strip() + b"\n)", mode="eval")
    except (SyntaxError, ValueError):
        return None
    return tree.body


_BINARY = {
    ast.MatMult: "matmul",
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.FloorDiv: "floor_divide",
    ast.Mod: "remainder",
    ast.Pow: "pow",
}
_COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.Gt: "gt", ast.LtE: "le", ast.GtE: "ge"}
_TENSOR_FIELDS = ("shape", "dtype", "device", "ndim", "is_cuda", "requires_grad")
_VIEW_FIELDS = ("T", "mT")
_SIZE_METHODS = ("size", "dim", "numel", "ndimension")
# Tensor methods that return a view (never a copy, never compute): an operand written as
# `x.transpose(1, 2)` inside the failing expression is rebuilt from `x` with them.
_VIEWS = """transpose permute view unsqueeze squeeze expand expand_as t narrow select unflatten
movedim moveaxis swapaxes swapdims unbind split chunk view_as diagonal"""
_VIEW_METHODS = frozenset(_VIEWS.split())
# Views only when the tensor is contiguous (otherwise they would copy): then not rebuilt.
_CONTIGUOUS_VIEW_METHODS = frozenset(("reshape", "flatten", "contiguous", "reshape_as"))
_PLAIN_TENSORS = (torch.Tensor, nn.Parameter)


class _Operands:
    """Reads the values of an expression's pieces from one frame, running nothing."""

    def __init__(self, frame: FrameType, outputs: ModuleOutput | None = None) -> None:
        self.locals = frame.f_locals
        self.globals = frame.f_globals
        self.builtins = frame.f_builtins
        self.outputs = outputs

    def op(self, node: ast.expr) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)], (self.value(node.left), self.value(node.right)), {}
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            left, right = self.value(node.left), self.value(node.comparators[0])
            return _COMPARE[type(node.ops[0])], (left, right), {}
        if isinstance(node, ast.Subscript):
            return "getitem", (self.value(node.value), self.value(node.slice)), {}
        return None

    def _call(self, node: ast.Call) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
        args: list[Any] = []
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = self.value(func.value)
            if isinstance(owner, torch.Tensor):  # a method: x.view(...), with x first
                name = func.attr
                args.append(owner)
            else:
                target = self._attribute(owner, func.attr)
                if target is UNKNOWN:
                    return None
                name = _callable_name(target, func.attr)
        elif isinstance(func, ast.Name):
            target = self._name(func.id)
            if target is UNKNOWN:
                return None
            name = _callable_name(target, func.id)
        else:
            return None
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                spread = self.value(arg.value)
                if isinstance(spread, (tuple, list)):
                    args.extend(spread)
                else:
                    args.append(UNKNOWN)
            else:
                args.append(self.value(arg))
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self.value(keyword.value)
            if keyword.arg is not None:
                kwargs[keyword.arg] = value
            elif type(value) is dict:
                kwargs.update({k: v for k, v in value.items() if isinstance(k, str)})
        return op_name_from(name), tuple(args), kwargs

    # -- values ----------------------------------------------------------------------------

    def value(self, node: ast.expr) -> Any:
        try:
            return self._value(node)
        except Exception:
            return UNKNOWN

    def _value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            return self._attribute(self._value(node.value), node.attr)
        if isinstance(node, (ast.Tuple, ast.List)):
            items: list[Any] = []
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    spread = self._value(element.value)
                    if not isinstance(spread, (tuple, list, torch.Size)):
                        return UNKNOWN
                    items.extend(spread)
                else:
                    items.append(self._value(element))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self._value(node.operand)
            return -operand if _number(operand) else UNKNOWN
        if isinstance(node, ast.BinOp):
            return _arithmetic(node.op, self._value(node.left), self._value(node.right))
        if isinstance(node, ast.Subscript):
            return _index(self._value(node.value), self._value(node.slice))
        if isinstance(node, ast.Slice):
            parts = [
                None if p is None else self._value(p) for p in (node.lower, node.upper, node.step)
            ]
            if any(p is UNKNOWN or not (p is None or isinstance(p, int)) for p in parts):
                return UNKNOWN
            return slice(*parts)
        if isinstance(node, ast.Call):
            return self._metadata_call(node)
        return UNKNOWN

    def _name(self, name: str) -> Any:
        for scope in (self.locals, self.globals, self.builtins):
            if type(scope) is dict and name in scope:
                return scope[name]
            if isinstance(scope, ModuleType) and name in vars(scope):
                return vars(scope)[name]
        return UNKNOWN

    def _attribute(self, owner: Any, attr: str) -> Any:
        if owner is UNKNOWN:
            return UNKNOWN
        if isinstance(owner, ModuleType):
            return vars(owner).get(attr, UNKNOWN)
        if isinstance(owner, torch.Tensor):
            if attr in _VIEW_FIELDS and _plain(owner):
                with torch._C.DisableTorchFunction(), torch.no_grad():
                    return getattr(owner, attr)
            if attr not in _TENSOR_FIELDS:
                return UNKNOWN
            with torch._C.DisableTorchFunction():
                return getattr(owner, attr)
        if isinstance(owner, nn.Module):
            state = object.__getattribute__(owner, "__dict__")
            for table in ("_parameters", "_buffers", "_modules"):
                found = state.get(table, {})
                if attr in found:
                    return found[attr]
            return state.get(attr, UNKNOWN)
        if isinstance(owner, tuple) and hasattr(type(owner), "_fields"):  # a namedtuple
            fields = type(owner)._fields  # type: ignore[attr-defined]
            return owner[fields.index(attr)] if attr in fields else UNKNOWN
        if isinstance(owner, type) and isinstance(vars(owner).get(attr), staticmethod):
            return vars(owner)[attr].__func__
        try:
            state = object.__getattribute__(owner, "__dict__")
        except AttributeError:
            return UNKNOWN
        return state.get(attr, UNKNOWN) if type(state) is dict else UNKNOWN

    def _metadata_call(self, node: ast.Call) -> Any:
        """`x.size(0)`, `x.dim()`, `len(shape)`, `x.transpose(1, 2)`, `self.up(x)`...: torch's
        own metadata reads and views of plain tensors (no copy, no compute), and the
        recorded outputs of module calls; never user code."""
        func = node.func
        if isinstance(func, ast.Attribute) and self.outputs is not None:
            module = self._value(func.value)
            module = self._attribute(module, func.attr) if module is not UNKNOWN else UNKNOWN
            if isinstance(module, nn.Module):
                return self.outputs(module)
        args = [self._value(a) for a in node.args]
        kwargs = {k.arg: self._value(k.value) for k in node.keywords if k.arg is not None}
        if any(a is UNKNOWN for a in (*args, *kwargs.values())) or len(kwargs) < len(node.keywords):
            return UNKNOWN
        if isinstance(func, ast.Attribute) and (
            func.attr in _SIZE_METHODS
            or func.attr in _VIEW_METHODS
            or func.attr in _CONTIGUOUS_VIEW_METHODS
        ):
            owner = self._value(func.value)
            if not isinstance(owner, torch.Tensor):
                return UNKNOWN
            if func.attr not in _SIZE_METHODS:
                if not _plain(owner):
                    return UNKNOWN
                if func.attr in _CONTIGUOUS_VIEW_METHODS and not owner.is_contiguous():
                    return UNKNOWN
            with torch._C.DisableTorchFunction(), torch.no_grad():
                return getattr(owner, func.attr)(*args, **kwargs)
        if node.keywords:
            return UNKNOWN
        if isinstance(func, ast.Name) and func.id in ("len", "int") and len(args) == 1:
            target = self._name(func.id)
            arg = args[0]
            if target is builtins.len and isinstance(arg, (tuple, list, torch.Size, str)):
                return len(arg)
            if target is builtins.int and _number(arg):
                return int(arg)
        return UNKNOWN


def _plain(t: torch.Tensor) -> bool:
    """A tensor whose views run no user code (no subclass of the user's, strided)."""
    return (type(t) in _PLAIN_TENSORS or _is_fake(t)) and t.layout == torch.strided


def _is_fake(t: torch.Tensor) -> bool:
    return type(t).__name__ == "FakeTensor" and type(t).__module__.startswith("torch.")


def stand_in(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of this shape, dtype and device holding one element (an expanded view)."""
    return torch.empty((), dtype=dtype, device=device).expand(shape)


def op_name_from(name: str) -> str:
    return name.strip("_") if name.startswith("__") else name


def _callable_name(target: Any, fallback: str) -> str:
    if isinstance(target, nn.Module):
        return type(target).__name__
    name = getattr(target, "__name__", None)
    return name if isinstance(name, str) and name else fallback


def _number(value: Any) -> bool:
    return type(value) in (int, float, bool)


def _arithmetic(op: ast.operator, left: Any, right: Any) -> Any:
    if _number(left) and _number(right):
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.FloorDiv) and right:
            return left // right
        if isinstance(op, ast.Div) and right:
            return left / right
        if isinstance(op, ast.Mod) and right:
            return left % right
    if isinstance(op, ast.Add) and type(left) in (tuple, torch.Size) and type(right) is tuple:
        return tuple(left) + right
    return UNKNOWN


def _index(base: Any, key: Any) -> Any:
    if base is UNKNOWN or key is UNKNOWN:
        return UNKNOWN
    if type(base) in (tuple, list, torch.Size, str) and isinstance(key, (int, slice)):
        return base[key]
    if type(base) is dict and isinstance(key, (str, int)):
        return base.get(key, UNKNOWN)
    return UNKNOWN


def module_chain(exc: BaseException) -> list[tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
    """The module calls the exception unwound, outermost first, each with the inputs it was
    called with (read from torch's call frames in the traceback; nothing is run)."""
    chain: list[tuple[nn.Module, tuple[Any, ...], dict[str, Any]]] = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        if code.co_name == "_call_impl" and code.co_filename == _MODULE_PY:
            local = frame.f_locals
            module = local.get("self")
            args, kwargs = local.get("args", ()), local.get("kwargs", {})
            if isinstance(module, nn.Module) and type(args) is tuple and type(kwargs) is dict:
                chain.append((module, args, kwargs))
        tb = tb.tb_next
    return chain
