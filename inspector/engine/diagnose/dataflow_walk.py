"""The statement-by-statement walk of one function, with shapes in place of values (see
dataflow.py)."""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import BuiltinFunctionType, CodeType, FunctionType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from inspector.engine.capture.naming import is_library_file
from inspector.engine.diagnose.dataflow_values import (
    DATA_METHODS,
    MAX_DEPTH,
    MAX_STEPS,
    MAX_TOTAL,
    MAX_UNROLL,
    PY_BUILTINS,
    UNKNOWN,
    Bound,
    Fields,
    Method,
    Obj,
    Step,
    Tensor,
    construct,
    from_real,
    introspect,
    is_a,
    is_torch_function,
    items_of,
    iterate,
    note_failure,
    on_meta,
    plain_index,
    py_builtin,
    retag,
    safe_attribute,
    torch_tensor_type,
    wrap,
)

if TYPE_CHECKING:
    from inspector.engine.records import Call


class Stop(Exception):
    """The walk reached the statement it was asked to stop at."""


class Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Break(Exception):
    pass


class Continue(Exception):
    pass


@dataclass
class Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    source: str  # dedented, as parsed
    offset: int  # add to the parsed line numbers
    indent: int  # columns removed by the dedent
    file: str
    lines: list[str] = field(default_factory=list)


_PARSED: dict[tuple[str, int], Function | None] = {}


def parse_function(code: CodeType) -> Function | None:
    key = (code.co_filename, code.co_firstlineno)
    if key in _PARSED:
        return _PARSED[key]
    found = None
    try:
        lines = linecache.getlines(code.co_filename)
        block = inspect.getblock(lines[code.co_firstlineno - 1 :])
        text = "".join(block)
        dedented = textwrap.dedent(text)
        indent = len(text) - len(text.lstrip()) - (len(dedented) - len(dedented.lstrip()))
        tree = ast.parse(dedented)
        node = tree.body[0] if tree.body else None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found = Function(
                node, dedented, code.co_firstlineno - 1, indent, code.co_filename, block
            )
    except Exception:
        found = None
    _PARSED[key] = found
    return found


class Scope:
    """One function being walked."""

    def __init__(self, walk: Any, fn: Function, call: Call | None, depth: int) -> None:
        self.walk = walk
        self.fn = fn
        self.call = call
        self.depth = depth
        self.stop_at: int | None = None
        self.real: dict[str, Any] | None = None
        self.globals: dict[str, Any] = {}
        self.stmt: ast.stmt | None = None
        self.owner: Any = None  # the object bound to the function's first parameter
        self.closure: dict[str, Any] = {}  # the function's free variables

    # -- statements ---------------------------------------------------------------------

    def block(self, body: list[ast.stmt], env: dict[str, Any]) -> None:
        for stmt in body:
            self.statement(stmt, env)

    def lineno(self, node: ast.AST) -> int:
        return getattr(node, "lineno", 0) + self.fn.offset

    def _contains_stop(self, stmt: ast.stmt) -> bool:
        if self.stop_at is None:
            return False
        first = self.lineno(stmt)
        last = getattr(stmt, "end_lineno", stmt.lineno) + self.fn.offset
        return first <= self.stop_at <= last

    def statement(self, stmt: ast.stmt, env: dict[str, Any]) -> None:
        self.walk.steps += 1
        self.walk.total += 1
        if self.walk.steps > MAX_STEPS or self.walk.total > MAX_TOTAL:
            raise RuntimeError("walk too long")
        if self.walk.total % 256 == 0 and time.perf_counter() > self.walk.deadline:
            raise RuntimeError("walk too slow")
        compound = isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try))
        stop = self._contains_stop(stmt) and not compound
        if stop and (self.real is None or consistent(env, self.real)):
            raise Stop(dict(env))
        self.stmt = stmt
        if isinstance(stmt, ast.Assign):
            value = self.expr(stmt.value, env)
            for target in stmt.targets:
                self.assign(target, value, env)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.assign(stmt.target, self.expr(stmt.value, env), env)
        elif isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.target, ast.Name):
                left = env.get(stmt.target.id, UNKNOWN)
                right = self.expr(stmt.value, env)
                env[stmt.target.id] = self.binary(stmt.op, left, right, stmt)
        elif isinstance(stmt, ast.Expr):
            self.expr(stmt.value, env)
        elif isinstance(stmt, ast.Return):
            raise Return(self.expr(stmt.value, env) if stmt.value is not None else None)
        elif isinstance(stmt, ast.If):
            self.branch(stmt, env)
        elif isinstance(stmt, ast.For):
            self.loop(stmt, env)
        elif isinstance(stmt, ast.While):
            self.forget(stmt, env)
        elif isinstance(stmt, ast.With):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, UNKNOWN, env)
            self.block(stmt.body, env)
        elif isinstance(stmt, ast.Try):
            self.block(stmt.body, env)
            self.block(stmt.orelse, env)
            self.block(stmt.finalbody, env)
        elif isinstance(stmt, ast.Break):
            raise Break()
        elif isinstance(stmt, ast.Continue):
            raise Continue()
        elif isinstance(stmt, ast.Raise):
            note_failure(self.step(stmt), RuntimeError(f"raises: {self.step(stmt).expr}"))
            raise Return(UNKNOWN)
        elif isinstance(stmt, ast.Assert) and self.expr(stmt.test, env) is False:
            note_failure(self.step(stmt), RuntimeError(f"fails: {self.step(stmt).expr}"))

    def assign(self, target: ast.expr, value: Any, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            if isinstance(value, Tensor) and not value.name:
                value.name = target.id
            env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = items_of(value, len(target.elts))
            for elt, item in zip(target.elts, items, strict=False):
                self.assign(elt, item, env)

    def forget(self, stmt: ast.stmt, env: dict[str, Any]) -> None:
        """Names a statement may assign, when the walk cannot tell what it did."""
        for name in assigned_names(stmt):
            env[name] = UNKNOWN

    def branch(self, stmt: ast.If, env: dict[str, Any]) -> None:
        test = self.expr(stmt.test, env)
        if isinstance(test, (bool, int)) or test is None:
            self.block(stmt.body if test else stmt.orelse, env)
            return
        taken = self._evidence(stmt)
        if taken is not None:
            self.block(stmt.body if taken else stmt.orelse, env)
            return
        if self._contains_stop(stmt):
            for part in (stmt.body, stmt.orelse):
                if part and self.lineno(part[0]) <= (self.stop_at or 0):
                    last = part[-1]
                    if self.stop_at <= getattr(last, "end_lineno", 0) + self.fn.offset:  # type: ignore[operator]
                        self.block(part, env)
                        return
        self.forget(stmt, env)

    def _evidence(self, stmt: ast.If) -> bool | None:
        """Which branch ran, from the recorded calls made on its lines."""
        if self.call is None:
            return None

        def ran(part: list[ast.stmt]) -> bool:
            if not part:
                return False
            first = self.lineno(part[0])
            last = getattr(part[-1], "end_lineno", 0) + self.fn.offset
            for call in self.walk.trace.calls[self.call.seq + 1 :]:  # type: ignore[union-attr]
                site = call.call_site
                if call.parent != self.call.seq or site is None:  # type: ignore[union-attr]
                    continue
                if site.file == self.fn.file and first <= site.lineno <= last:
                    return True
            return False

        body, other = ran(stmt.body), ran(stmt.orelse)
        if body != other:
            return body
        return None

    def loop(self, stmt: ast.For, env: dict[str, Any]) -> None:
        items = self.expr(stmt.iter, env)
        sequence = iterate(items)
        if sequence is None:
            self.forget(stmt, env)
            return
        for item in sequence[:MAX_UNROLL]:
            self.assign(stmt.target, item, env)
            try:
                self.block(stmt.body, env)
            except Break:
                return
            except Continue:
                continue
        self.block(stmt.orelse, env)

    # -- expressions --------------------------------------------------------------------

    def step(self, node: ast.AST) -> Step:
        text = ast.get_source_segment(self.fn.source, node) or ""
        owner = self.owner
        return Step(self.fn.file, self.lineno(node), self.fn.node.name, " ".join(text.split()),
                    owner)  # fmt: skip

    def expr(self, node: ast.expr | None, env: dict[str, Any]) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.name(node.id, env)
        if isinstance(node, (ast.Tuple, ast.List)):
            values: list[Any] = []
            for e in node.elts:
                if not isinstance(e, ast.Starred):
                    values.append(self.expr(e, env))
                    continue
                spread = self.expr(e.value, env)
                if not isinstance(spread, (tuple, list)):
                    return UNKNOWN
                values.extend(spread)
            return tuple(values) if isinstance(node, ast.Tuple) else list(values)
        if isinstance(node, ast.Dict):
            keys = [self.expr(k, env) if k is not None else None for k in node.keys]
            if not all(type(k) is str for k in keys):
                return UNKNOWN
            return {k: self.expr(v, env) for k, v in zip(keys, node.values, strict=True)}
        if isinstance(node, ast.Attribute):
            return self.attribute(self.expr(node.value, env), node.attr)
        if isinstance(node, ast.Call):
            return self.call_expr(node, env)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, env)
        if isinstance(node, ast.BinOp):
            return self.binary(node.op, self.expr(node.left, env), self.expr(node.right, env),
                               node)  # fmt: skip
        if isinstance(node, ast.UnaryOp):
            value = self.expr(node.operand, env)
            if isinstance(node.op, ast.USub) and isinstance(value, (int, float)):
                return -value
            if (isinstance(node.op, ast.Not) and isinstance(value, (bool, int))) or value is None:
                return not value
            if isinstance(value, Tensor):
                return retag(value.meta(), self.step(node), (value,))
            return UNKNOWN
        if isinstance(node, ast.Compare):
            return self.compare(node, env)
        if isinstance(node, ast.BoolOp):
            values = [self.expr(v, env) for v in node.values]
            if all(isinstance(v, (bool, int)) or v is None for v in values):
                return all(values) if isinstance(node.op, ast.And) else any(values)
            return UNKNOWN
        if isinstance(node, ast.IfExp):
            test = self.expr(node.test, env)
            if isinstance(test, (bool, int)) or test is None:
                return self.expr(node.body if test else node.orelse, env)
            return UNKNOWN
        return UNKNOWN

    def name(self, name: str, env: dict[str, Any]) -> Any:
        if name in env:
            return env[name]
        if name in self.closure:
            return from_real(self.closure[name], name)
        if name in self.globals:
            return Obj(self.globals[name])
        if hasattr(builtins, name):
            return Obj(getattr(builtins, name))
        return UNKNOWN

    def attribute(self, owner: Any, attr: str) -> Any:
        if isinstance(owner, Tensor):
            if attr == "shape":
                return tuple(owner.shape)
            if attr == "ndim":
                return len(owner.shape)
            if attr == "dtype":
                return owner.dtype
            if attr in ("T", "mT", "H", "mH"):
                try:
                    return getattr(owner.meta(), attr)
                except Exception:
                    return UNKNOWN
            return Method(owner, attr)
        if isinstance(owner, Obj):
            found = safe_attribute(owner.value, attr)
            return UNKNOWN if found is UNKNOWN else wrap(found, owner.value)
        if isinstance(owner, Fields):
            return owner.item(attr)
        return UNKNOWN

    def call_expr(self, node: ast.Call, env: dict[str, Any]) -> Any:
        callee = self.expr(node.func, env)
        args: list[Any] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                spread = self.expr(a.value, env)
                if not isinstance(spread, (tuple, list)):
                    return UNKNOWN
                args.extend(spread)
            else:
                args.append(self.expr(a, env))
        kwargs: dict[str, Any] = {}
        for k in node.keywords:
            if k.arg is None:  # **spread
                spread = self.expr(k.value, env)
                if type(spread) is not dict:
                    return UNKNOWN
                kwargs.update(spread)
                continue
            kwargs[k.arg] = self.expr(k.value, env)
        step = self.step(node)
        if isinstance(callee, Method):
            return self.tensor_method(callee, args, kwargs, step)
        if isinstance(callee, Bound):
            if self.depth >= MAX_DEPTH:
                return UNKNOWN
            return self.walk.walk_function(callee.function, (Obj(callee.owner), *args), kwargs,
                                           self.depth + 1, self.call)  # fmt: skip
        if not isinstance(callee, Obj):
            return UNKNOWN
        target = callee.value
        if is_a(target, nn.Module):
            return self.walk.module_call(self, target, args, kwargs, step)
        if any(target is b for b in PY_BUILTINS):
            return py_builtin(target, args)
        if target is hasattr or target is getattr or target is isinstance:
            return introspect(target, args)
        if target is enumerate or target is zip or target is reversed:
            found = [iterate(a) for a in args]
            sequences = [s for s in found if s is not None]
            if not args or len(sequences) != len(found):
                return UNKNOWN
            if target is enumerate:
                start = kwargs.get("start", args[1] if len(args) > 1 else 0)
                return tuple((start + i, v) for i, v in enumerate(sequences[0]))
            if target is reversed:
                return tuple(reversed(sequences[0]))
            return tuple(zip(*sequences, strict=False))
        if type(target) is type:
            made = construct(target, args, kwargs)
            if made is not UNKNOWN:
                return made
        if is_torch_function(target):
            return on_meta(target, args, kwargs, step)
        if type(target) is FunctionType and self.depth < MAX_DEPTH:
            if is_library_file(target.__code__.co_filename):
                return UNKNOWN
            # a plain function of the user's (a helper such as rotate_half): walked too
            return self.walk.walk_function(target, tuple(args), kwargs, self.depth + 1,
                                           self.call)  # fmt: skip
        return UNKNOWN

    def tensor_method(self, method: Method, args: list[Any], kwargs: dict[str, Any],
                      step: Step) -> Any:  # fmt: skip
        t = method.tensor
        name = method.name
        if name == "size":
            if not args and not kwargs:
                return tuple(t.shape)
            dim = args[0] if args else kwargs.get("dim")
            if isinstance(dim, int) and -len(t.shape) <= dim < len(t.shape):
                return t.shape[dim]
            return UNKNOWN
        if name in ("dim", "ndimension"):
            return len(t.shape)
        if name == "numel":
            n = 1
            for d in t.shape:
                n *= d
            return n
        if name in DATA_METHODS or not isinstance(
            inspect.getattr_static(torch.Tensor, name, None),
            (BuiltinFunctionType, FunctionType, type(torch.Tensor.view)),
        ):
            return UNKNOWN
        return on_meta(getattr(torch.Tensor, name), [t, *args], kwargs, step)

    def subscript(self, node: ast.Subscript, env: dict[str, Any]) -> Any:
        value = self.expr(node.value, env)
        index = self.expr(node.slice, env) if not isinstance(node.slice, ast.Slice) else \
            self._slice(node.slice, env)  # fmt: skip
        if isinstance(node.slice, ast.Tuple):
            index = tuple(
                self._slice(e, env) if isinstance(e, ast.Slice) else self.expr(e, env)
                for e in node.slice.elts
            )
        if isinstance(value, Fields):
            return value.item(index)
        if isinstance(value, Tensor):
            if not plain_index(index):
                return UNKNOWN
            return on_meta(torch.Tensor.__getitem__, [value, index], {}, self.step(node))
        if isinstance(value, (tuple, list)) and isinstance(index, (int, slice)):
            try:
                return value[index]
            except IndexError:
                return UNKNOWN
        if isinstance(value, Obj) and isinstance(index, int):
            target = value.value
            if is_a(target, (nn.ModuleList, nn.Sequential)):
                try:
                    return Obj(target[index])
                except IndexError:
                    return UNKNOWN
        return UNKNOWN

    def _slice(self, node: ast.Slice, env: dict[str, Any]) -> Any:
        parts = [self.expr(p, env) if p is not None else None
                 for p in (node.lower, node.upper, node.step)]  # fmt: skip
        if all(p is None or isinstance(p, int) for p in parts):
            return slice(*parts)
        return UNKNOWN

    def binary(self, op: ast.operator, left: Any, right: Any, node: ast.AST) -> Any:
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            try:
                return _ARITH[type(op)](left, right)
            except (KeyError, ZeroDivisionError, ArithmeticError):
                return UNKNOWN
        if isinstance(left, tuple) and isinstance(right, tuple) and isinstance(op, ast.Add):
            return left + right
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            function = _TENSOR_OPS.get(type(op))
            if function is None:
                return UNKNOWN
            return on_meta(function, [left, right], {}, self.step(node))
        return UNKNOWN

    def compare(self, node: ast.Compare, env: dict[str, Any]) -> Any:
        if len(node.ops) != 1:
            return UNKNOWN
        left, right = self.expr(node.left, env), self.expr(node.comparators[0], env)
        op = node.ops[0]
        if isinstance(op, (ast.Is, ast.IsNot)):
            if isinstance(right, type(None)) and right is None:
                if left is UNKNOWN:
                    return UNKNOWN
                same = left is None
                return same if isinstance(op, ast.Is) else not same
            return UNKNOWN
        plain = (int, float, str, tuple, type(None))
        if isinstance(left, plain) and isinstance(right, plain):
            try:
                return _COMPARE[type(op)](left, right)
            except (KeyError, TypeError):
                return UNKNOWN
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            function = _TENSOR_COMPARE.get(type(op))
            if function is not None:
                return on_meta(function, [left, right], {}, self.step(node))
        return UNKNOWN


_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b if abs(b) < 64 else UNKNOWN,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_TENSOR_COMPARE: dict[type, Any] = {
    ast.Eq: torch.eq,
    ast.NotEq: torch.ne,
    ast.Lt: torch.lt,
    ast.LtE: torch.le,
    ast.Gt: torch.gt,
    ast.GtE: torch.ge,
}
_TENSOR_OPS: dict[type, Any] = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.MatMult: torch.matmul,
    ast.Pow: torch.pow,
    ast.FloorDiv: torch.floor_divide,
    ast.Mod: torch.remainder,
}


def bind(node: ast.FunctionDef | ast.AsyncFunctionDef, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Arguments to parameter names, as a call binds them (defaults that are constants)."""
    a = node.args
    positional = [p.arg for p in (*a.posonlyargs, *a.args)]
    env: dict[str, Any] = {}
    if len(args) > len(positional) and a.vararg is None:
        raise TypeError("too many arguments")
    for name, value in zip(positional, args, strict=False):
        env[name] = value
    if a.vararg is not None:
        env[a.vararg.arg] = tuple(args[len(positional) :])
    defaults = a.defaults
    for name, default in zip(positional[len(positional) - len(defaults) :], defaults,
                             strict=False):  # fmt: skip
        if name not in env:
            env[name] = default.value if isinstance(default, ast.Constant) else UNKNOWN
    for p, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=False):
        if isinstance(kw_default, ast.Constant):
            env[p.arg] = kw_default.value
        elif kw_default is not None:
            env[p.arg] = UNKNOWN
    extra: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in positional or k in [p.arg for p in a.kwonlyargs]:
            env[k] = v
        else:
            extra[k] = v
    if a.kwarg is not None:
        env[a.kwarg.arg] = extra  # exactly the keywords no parameter took
    elif extra:
        raise TypeError("unexpected keyword")
    for name in [*positional, *(p.arg for p in a.kwonlyargs)]:
        env.setdefault(name, UNKNOWN)
    return env


def parameter_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args)]
    if a.vararg is not None:
        names.append(a.vararg.arg)
    names.extend(p.arg for p in a.kwonlyargs)
    if a.kwarg is not None:
        names.append(a.kwarg.arg)
    return names


def assigned_names(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
    return names


def consistent(env: dict[str, Any], real: dict[str, Any]) -> bool:
    """Whether the walk stands where the frame stood: every tensor it knows has its real
    shape, every object it knows is the real one (a loop's current layer)."""
    for name, value in env.items():
        if name not in real:
            continue
        actual = real[name]
        if isinstance(value, Tensor) and value.known:
            if not torch_tensor_type(type(actual)):
                continue
            if tuple(actual.shape) != value.shape:
                return False
        elif isinstance(value, Obj) and is_a(value.value, nn.Module) and value.value is not actual:
            return False
    return True
