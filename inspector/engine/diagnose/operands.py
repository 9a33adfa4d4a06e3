"""The values in a failing expression, read from its frame without running anything.

Names come from the frame's variables; attributes are read from instance dictionaries,
Python modules and torch's own tensor metadata; a module called inside the expression gives
its recorded output; views of plain tensors (no subclass of the user's) are rebuilt, never a
copy. No property, `__getattr__` or `__torch_function__` of the user's is ever called: what
cannot be read that way is UNKNOWN.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any

import torch
from torch import nn

ModuleOutput = Callable[[nn.Module], Any]


class _Unknown:
    """An operand the traceback does not give without running code."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN: Any = _Unknown()


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


class Operands:
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
    if isinstance(base, torch.Tensor) and _plain(base) and _basic_index(key):
        with torch._C.DisableTorchFunction(), torch.no_grad():
            return base[key]  # a view: slicing a plain tensor runs no user code
    return UNKNOWN


def _basic_index(key: Any) -> bool:
    """Ints, slices, None and Ellipsis: an index that makes a view, never a copy."""
    parts = key if type(key) is tuple else (key,)
    return all(p is None or p is Ellipsis or type(p) in (int, slice) for p in parts) and not any(
        type(p) is bool for p in parts
    )
