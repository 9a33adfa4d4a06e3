"""Where each dimension of a tensor came from: a forward's lines read as data flow.

The failing pass is not run again, and no user code runs at all. A forward's source is read
(`ast`) and walked statement by statement with shapes in place of values:

- a submodule call takes the output the record holds for it (matched by module and call
  site); without a record, a torch.nn layer is evaluated on meta tensors (its own forward on
  a shallow copy whose parameters are meta: no hook, no data, the user's module untouched) and
  a module of the user's is walked the same way, a few levels deep;
- a torch function or tensor method on known shapes is evaluated on meta tensors: torch's own
  shape rules, no data;
- ints, tuples, `x.shape`, `x.size(0)` are plain values.

Every tensor keeps the step (line and expression) that made it and the values it was made
from, so a wrong dimension is followed back to the line where it got its value. The walk is
checked against what is known for real: the failing frame's own variables; a name whose
walked shape disagrees with its real one keeps the real shape and no history. What cannot be
known this way is UNKNOWN, and the walk goes on without it.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType
from typing import TYPE_CHECKING, Any

from torch import nn

from inspector.engine.capture.naming import source_line
from inspector.engine.diagnose.dataflow_values import (
    MAX_DEPTH,
    UNKNOWN,
    Fields,
    Obj,
    Step,
    Tensor,
    from_info,
    from_real,
    is_library,
    layer_on_meta,
    retag,
    tensors_in,
    torch_tensor_type,
)
from inspector.engine.diagnose.dataflow_walk import (
    Function,
    Return,
    Scope,
    Stop,
    assigned_names,
    bind,
    parameter_names,
    parse_function,
)
from inspector.engine.records import Struct

if TYPE_CHECKING:
    from inspector.engine.records import Call, Trace

MAX_SECONDS = 2.0  # wall time one walk may take, whatever the model

__all__ = ["UNKNOWN", "Change", "Step", "Stopped", "Tensor", "Walk", "layer_on_meta",
           "where_dim_became"]  # fmt: skip


class Walk:
    """Shapes through the forwards of one failing pass."""

    def __init__(self, trace: Trace, modules: list[Any]) -> None:
        self.trace = trace
        self.modules = modules  # weak references to each recorded call's module, by seq
        self.steps = 0  # statements walked in the current function
        self.total = 0  # statements walked in all
        self.deadline = time.perf_counter() + MAX_SECONDS  # an explanation stays quick
        self.used: set[int] = set()  # recorded calls already matched to a walked call
        self.recorder: Any = None  # walked.Recorder: calls the record lacks are added to it
        self.overrides: dict[int, nn.Module] = {}  # id of a live layer -> the layer in its place
        self.verifying = False  # past the failure: calls that failed are walked again
        self.fresh = False  # the inputs differ from the record's: no recorded output holds
        self.seen: list[tuple[nn.Module, list[Any]]] = []  # each module call met, its args

    # -- entry points -----------------------------------------------------------------

    def frame(self, frame: FrameType, lineno: int, call: Call | None,
              args: tuple[Any, ...] | None = None,
              kwargs: dict[str, Any] | None = None) -> Stopped | None:  # fmt: skip
        """`frame`'s function walked up to the statement at line `lineno`: its names as they
        stand there, each with its history; None when the source cannot be walked.
        `args`/`kwargs` are the call's own inputs when known (a parameter the body
        reassigns needs them)."""
        fn = parse_function(frame.f_code)
        if fn is None:
            return None
        real = dict(frame.f_locals)
        env = self._parameters(fn, real, args, kwargs)
        if env is None:
            return None
        scope = Scope(self, fn, call, 0)
        scope.globals = frame.f_globals
        first = parameter_names(fn.node)[:1]
        scope.owner = real.get(first[0]) if first else None
        scope.stop_at = lineno
        scope.real = real
        try:
            scope.block(fn.node.body, env)
        except Stop as stop:
            return Stopped(scope, _checked(stop.args[0], real))
        except Exception:
            return None
        return None

    def _parameters(self, fn: Function, real: dict[str, Any], args: tuple[Any, ...] | None,
                    kwargs: dict[str, Any] | None) -> dict[str, Any] | None:  # fmt: skip
        """The function's parameters at entry: the call's own inputs when given, else the
        frame's value of each parameter the body never reassigns."""
        names = parameter_names(fn.node)
        assigned = assigned_names(fn.node)
        bound: dict[str, Any] = {}
        if args is not None and names and names[0] in real:  # a method: its `self` first
            try:
                bound = bind(fn.node, (Obj(real[names[0]]), *args), kwargs or {})
            except TypeError:
                bound = {}
        env: dict[str, Any] = {}
        for name in names:
            if name in bound and bound[name] is not UNKNOWN:
                env[name] = bound[name]
                if isinstance(env[name], Tensor) and not env[name].name:
                    env[name].name = name
            elif name in real and name not in assigned:
                env[name] = from_real(real[name], name)
            else:
                env[name] = UNKNOWN
        return env

    def output(self, call: Call) -> Any:
        """What the recorded call `call` returned, walked through its forward from its
        recorded inputs (its children's outputs from the record): tensors with history."""
        module = self.modules[call.seq]() if call.seq < len(self.modules) else None
        forward = getattr(type(module), "forward", None)
        if module is None or not isinstance(forward, FunctionType) or is_library(type(module)):
            return UNKNOWN
        inputs = [from_info(v, None, (), None, None) for v in call.inputs]
        kwargs: dict[str, Any] = {}
        if isinstance(call.kwargs, Struct):
            kwargs = {k: from_info(v, None, (), None, None) for k, v in call.kwargs.fields}
        out = self.walk_function(forward, (Obj(module), *inputs), kwargs, 1, call)
        known = from_info(call.outputs, None, (), call, module)
        _fill(out, known)
        return out if _same_shapes(out, known) else UNKNOWN

    # -- module calls -------------------------------------------------------------------

    def module_call(self, scope: Scope, module: nn.Module, args: list[Any],
                    kwargs: dict[str, Any], step: Step) -> Any:  # fmt: skip
        self.seen.append((module, args))
        if id(module) in self.overrides:  # a fix being checked: the fixed layer, on meta
            made = layer_on_meta(self.overrides[id(module)], args, kwargs, step, module)
            return retag(made, step, tensors_in(args, kwargs), module)
        recorded = self._recorded(scope, module, step)
        if recorded is None and self.recorder is not None:
            site = source_line(step.file, step.lineno, step.function)
            pending = self.recorder.start(module, scope.call, site, tuple(args), dict(kwargs))
            out = self._evaluate(scope, module, args, kwargs, step, None, pending)
            if pending is not None:
                pending.outputs = _with_call(out, pending)
            return out
        return self._evaluate(scope, module, args, kwargs, step, recorded, recorded)

    def _evaluate(self, scope: Scope, module: nn.Module, args: list[Any],
                  kwargs: dict[str, Any], step: Step, recorded: Call | None,
                  within: Any) -> Any:  # fmt: skip
        """A module call's output: recorded, or worked out on meta / by walking its forward.
        `within` is the call the walk's own record holds for it (its children's parent)."""
        sources = tensors_in(args, kwargs)
        if recorded is not None and recorded.status != "ok":
            if not self.verifying:
                return UNKNOWN
            recorded = None  # it failed in the real pass: worked out afresh, its children
            # still matched to what the record holds of them
        known = None
        if recorded is not None:
            known = from_info(recorded.outputs, step, sources, recorded, module)
        forward = getattr(type(module), "forward", None)
        if is_library(type(module)):
            if known is not None:
                return known
            walkable = self.recorder is not None or self.verifying
            container = module._modules and walkable and within is not None
            if container and isinstance(forward, FunctionType):
                # a container's children are recorded one by one, as a trace records them
                size = len(self.recorder.pending) if self.recorder is not None else 0
                out = self.walk_function(forward, (Obj(module), *args), kwargs, scope.depth + 1,
                                         within)  # fmt: skip
                if _all_known(out):
                    return retag(out, step, sources, module, keep_history=True)
                if self.recorder is not None:
                    self.recorder.rollback(size)
            return retag(layer_on_meta(module, args, kwargs, step), step, sources, module)
        if isinstance(forward, FunctionType) and scope.depth < MAX_DEPTH:
            out = self.walk_function(forward, (Obj(module), *args), kwargs, scope.depth + 1,
                                     within)  # fmt: skip
            if known is not None:
                _fill(out, known)
            if out is not UNKNOWN and (known is None or _same_shapes(out, known)):
                out = retag(out, step, sources, module, keep_history=True)
                return _with_call(out, recorded) if recorded is not None else out
        return UNKNOWN if known is None else known

    def _recorded(self, scope: Scope, module: nn.Module, step: Step) -> Call | None:
        parent = scope.call.seq if scope.call is not None else None
        if parent is None or self.fresh:
            return None
        for call in self.trace.calls[parent + 1 :]:
            if call.parent != parent or call.seq in self.used:
                continue
            if call.seq >= len(self.modules) or self.modules[call.seq]() is not module:
                continue
            self.used.add(call.seq)
            return call
        return None

    def walk_function(
        self,
        function: FunctionType,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        depth: int,
        call: Call | None = None,
    ) -> Any:
        function = _unwrapped(function)
        fn = parse_function(function.__code__)
        if fn is None:
            return UNKNOWN
        try:
            env = bind(fn.node, args, kwargs)
        except TypeError:
            return UNKNOWN
        scope = Scope(self, fn, call, depth)
        scope.globals = function.__globals__
        scope.closure = _closure(function)
        if args and isinstance(args[0], Obj):
            scope.owner = args[0].value
        spent, self.steps = self.steps, 0  # each forward walked has its own budget
        try:
            scope.block(fn.node.body, env)
        except Return as done:
            return done.value
        except Exception:
            return UNKNOWN
        finally:
            self.steps = spent
        return None


@dataclass
class Stopped:
    """A function walked up to a statement: evaluate that statement's pieces there."""

    scope: Scope
    env: dict[str, Any]

    def expression(self, code: CodeType, lasti: int) -> ast.expr | None:
        """The function's own node for the expression the instruction at `lasti` ran."""
        positions = list(code.co_positions())
        if lasti < 0 or lasti // 2 >= len(positions):
            return None
        line, end_line, col, end_col = positions[lasti // 2]
        if None in (line, end_line, col, end_col):
            return None
        fn = self.scope.fn
        want = (line - fn.offset, end_line - fn.offset, col - fn.indent, end_col - fn.indent)  # type: ignore[operator]
        for node in ast.walk(fn.node):
            if (
                isinstance(node, ast.expr)
                and (node.lineno, node.end_lineno, node.col_offset, node.end_col_offset) == want
            ):
                return node
        return None

    def value(self, node: ast.expr) -> Any:
        """An expression of the stopped-at statement, evaluated with the walk's names: its
        tensors carry their history."""
        try:
            return self.scope.expr(node, self.env)
        except Exception:
            return UNKNOWN


def _unwrapped(function: FunctionType) -> FunctionType:
    """The function a decorator wrapped (functools.wraps keeps it as `__wrapped__`): a
    forward under `@can_return_tuple` is walked as written, not the wrapper's *args."""
    for _ in range(8):
        inner = function.__dict__.get("__wrapped__")
        if type(inner) is not FunctionType:
            break
        function = inner
    return function


def _closure(function: FunctionType) -> dict[str, Any]:
    names = function.__code__.co_freevars
    cells = function.__closure__ or ()
    found: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=False):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return found


def _all_known(out: Any) -> bool:
    if isinstance(out, Tensor):
        return out.known
    if isinstance(out, (tuple, list)):
        return bool(out) and all(_all_known(o) for o in out)
    return False


def _fill(walked: Any, known: Any) -> None:
    """Shapes the record gives, into the tensors the walk could not work out."""
    if isinstance(walked, Tensor) and isinstance(known, Tensor):
        walked.fill(known.shape)
    elif isinstance(walked, (tuple, list)) and isinstance(known, (tuple, list)):
        for w, k in zip(walked, known, strict=False):
            _fill(w, k)


def _same_shapes(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_shapes(x, y) for x, y in zip(a, b, strict=True))
    return isinstance(b, (Tensor, tuple, list)) is False


def _with_call(out: Any, call: Any) -> Any:
    if call is None:
        return out
    if isinstance(out, Tensor):
        out.call = call
    elif isinstance(out, (tuple, list)):
        for o in out:
            _with_call(o, call)
    elif isinstance(out, Fields):
        for o in out.values.values():
            _with_call(o, call)
    return out


def _checked(env: dict[str, Any], real: dict[str, Any]) -> dict[str, Any]:
    """The walk's names, each tensor checked against its real shape (a name that disagrees
    keeps the real shape and loses its history)."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        actual = real.get(name)
        shape = tuple(actual.shape) if torch_tensor_type(type(actual)) else None  # type: ignore[union-attr]
        if isinstance(value, Tensor) and shape is not None:
            value.fill(shape)
            if shape != value.shape:
                value = from_real(actual, name)
        out[name] = value
    return out


def inputs_as_values(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call's live inputs as the walk holds them."""
    return tuple(from_real(a, "") for a in args), {k: from_real(v, k) for k, v in kwargs.items()}


@dataclass(frozen=True)
class Change:
    """Where a dimension got its value: the step, the tensor before it and after it."""

    step: Step
    before: Tensor
    after: Tensor


def where_dim_became(value: Tensor, dim: int, size: int) -> Change | None:
    """The step that gave `value`'s dim `dim` the size `size`, following each tensor back to
    the first tensor it was made from; None when its history does not say."""
    for t in value.lineage():
        if len(t.shape) <= dim or t.shape[dim] != size:
            return None
        source = t.sources[0] if t.sources else None
        if source is None:
            return None
        if (len(source.shape) <= dim or source.shape[dim] != size) and t.step is not None:
            return Change(t.step, source, t)
    return None
