"""The calls of a failed pass, read from its traceback by the data-flow walk.

`explain()` hooks nothing, so its record of a failure is only the chain of module calls the
exception unwound. Each of those calls' forwards is still on the traceback, stopped at the line
that failed: walking it (dataflow.py) up to that line gives the module calls it made before,
with their input and output shapes (a torch.nn layer's from torch's own shape rules on meta
tensors, a user's module by walking its forward in turn), and which call produced each
tensor. The result has the shape of the record a trace keeps (calls in the order they
started, parents, call sites, producers), so every explanation reads it the same way. A
forward the walk cannot follow to its failing line adds nothing: the chain stays as it was.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from types import FrameType, TracebackType
from typing import Any

from torch import nn

from inspector.engine.capture.describe import Describer
from inspector.engine.capture.naming import module_line, source_line
from inspector.engine.diagnose.dataflow import Walk
from inspector.engine.diagnose.dataflow_values import Fields, Tensor, is_library
from inspector.engine.records import Call, SourceLine, Struct, TensorInfo, Trace, Value

MAX_CALLS = 5000  # calls recorded by one walk, at most


@dataclass
class Pending:
    """A call as the walk meets it; made a Call once the walk is over."""

    seq: int
    path: str
    index: int
    type: str
    depth: int
    parent: int | None
    module_repr: str
    call_site: SourceLine | None
    inputs: tuple[Any, ...] = ()  # walk values, or records already (a chain call's)
    kwargs: dict[str, Any] = field(default_factory=dict)
    outputs: Any = None
    status: str = "ok"
    error: str | None = None


class Recorder:
    """Collects the calls a walk makes, numbered in the order they start."""

    def __init__(self, root: nn.Module, device: str) -> None:
        self.paths: dict[int, str] = {}
        for path, module in root.named_modules(remove_duplicate=False):
            self.paths.setdefault(id(module), path)
        self.device = device
        self.pending: list[Pending] = []
        self.modules: list[weakref.ref[nn.Module]] = []
        self.counts: dict[str, int] = {}

    def start(self, module: nn.Module, parent: Pending | None, site: SourceLine | None,
              inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Pending | None:  # fmt: skip
        if len(self.pending) >= MAX_CALLS:
            return None
        path = self.paths.get(id(module), type(module).__name__)
        index = self.counts.get(path, 0)
        self.counts[path] = index + 1
        made = Pending(
            seq=len(self.pending),
            path=path,
            index=index,
            type=type(module).__name__,
            depth=parent.depth + 1 if parent is not None else 0,
            parent=parent.seq if parent is not None else None,
            module_repr=_module_repr(module),
            call_site=site,
            inputs=inputs,
            kwargs=kwargs,
        )
        self.pending.append(made)
        self.modules.append(weakref.ref(module))
        return made

    def rollback(self, size: int) -> None:
        """Forget the calls recorded after the first `size` (a walk that lost its way)."""
        for dropped in self.pending[size:]:
            key = dropped.path
            self.counts[key] = self.counts.get(key, 1) - 1
        del self.pending[size:]
        del self.modules[size:]

    def calls(self) -> list[Call]:
        return [
            Call(
                seq=p.seq,
                path=p.path,
                index=p.index,
                type=p.type,
                depth=p.depth,
                parent=p.parent,
                inputs=tuple(self._value(v) for v in p.inputs),
                kwargs=Struct("kwargs", tuple((k, self._value(v)) for k, v in p.kwargs.items()))
                if p.kwargs
                else None,
                outputs=self._value(p.outputs),
                status=p.status,
                error=p.error,
                module_repr=p.module_repr,
                call_site=p.call_site,
            )
            for p in self.pending
        ]

    def _value(self, value: Any) -> Value:
        if isinstance(value, (TensorInfo, Struct)):
            return value
        if isinstance(value, Tensor):
            if not value.known:
                return None
            return TensorInfo(
                shape=value.shape,
                dtype=str(value.dtype).removeprefix("torch."),
                device=self.device,
                producer=_producer(value),
                view_of=_view_of(value),
            )
        if isinstance(value, (tuple, list)):
            return tuple(self._value(v) for v in value)
        if isinstance(value, Fields):  # a model output: its fields that are set
            fields = [(k, self._value(v)) for k, v in value.values.items() if v is not None]
            return Struct(value.cls.__name__, tuple(fields))
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return None


def _module_repr(module: nn.Module) -> str:
    """The module's own line, from torch's code only: an `extra_repr` of the user's is user
    code, which a diagnosis never runs."""
    own = getattr(type(module), "extra_repr", None)
    if own is nn.Module.extra_repr or is_library(type(module)):
        return module_line(module)
    return f"{type(module).__name__}(...)"


def _producer(value: Tensor) -> int | None:
    call = value.call
    return call.seq if isinstance(call, Pending) else None


def _view_of(value: Tensor) -> int | None:
    """The call whose output this tensor is a view of, through views and reshapes only."""
    if _producer(value) is not None:
        return None
    t: Tensor | None = value
    while t is not None and t.view and t.sources:
        t = t.sources[0]
        if _producer(t) is not None:
            return _producer(t)
    return None


@dataclass
class Walked:
    """The record of a failed pass as the walk rebuilt it."""

    trace: Trace
    modules: list[weakref.ref[nn.Module]]
    infos: dict[int, tuple[Any, TensorInfo]]  # id of a live input -> (it, its record)

    def lookup(self, tensor: Any) -> TensorInfo | None:
        """The record of a live tensor a call of the chain was given."""
        found = self.infos.get(id(tensor))
        return found[1] if found is not None and found[0] is tensor else None


def walked_trace(error: BaseException, chain: list[tuple[nn.Module, tuple[Any, ...],
                 dict[str, Any]]], root: nn.Module) -> Walked | None:  # fmt: skip
    """The record of the failed pass: the chain's calls with every call the walk finds
    before the failure in each of their forwards. None when no forward could be walked."""
    if not chain:
        return None
    describer = Describer(stats=False)
    infos: dict[int, tuple[Any, TensorInfo]] = {}
    first = next((a for a in chain[0][1] if hasattr(a, "device")), None)
    recorder = Recorder(root, str(getattr(first, "device", "cpu")))
    frames = _forward_frames(error, chain)
    walked = False
    parent: Pending | None = None
    site = _caller_site(error)
    following = True
    given: list[Any] = []  # the walk's values of the next call's arguments
    for i, (module, args, kwargs) in enumerate(chain):
        inputs = tuple(
            _described(describer, infos, a, given[j] if j < len(given) else None)
            for j, a in enumerate(args)
        )
        kw = {k: _described(describer, infos, v, None) for k, v in kwargs.items()}
        made = recorder.start(module, parent, site, inputs, kw)
        if made is None:
            return None
        made.status = "error"
        entry = frames[i] if following else None
        given = []
        if entry is None:
            following = False
        else:
            size = len(recorder.pending)
            found = _walk_level(recorder, made, entry, args, kwargs)
            if found is not None:
                walked = True
                given = found
            else:
                recorder.rollback(size)
                following = False
            site = source_line(entry.tb_frame.f_code.co_filename, entry.tb_lineno,
                               entry.tb_frame.f_code.co_name)  # fmt: skip
        parent = made
    if not walked:
        return None
    return Walked(Trace(recorder.calls(), error=error), recorder.modules, infos)


def _described(describer: Describer, infos: dict[int, tuple[Any, TensorInfo]], value: Any,
               walked: Any) -> Any:  # fmt: skip
    """A chain call's live input as a record: one record per tensor (the same object when a
    tensor is handed down), with the call that produced it when the walk knows."""
    if id(value) in infos and infos[id(value)][0] is value:
        return infos[id(value)][1]
    info = describer.describe(value)
    known = isinstance(walked, Tensor) and walked.known
    if isinstance(info, TensorInfo) and known and walked.shape == info.shape:
        info = replace(info, producer=_producer(walked), view_of=_view_of(walked))
    if isinstance(info, TensorInfo):
        infos[id(value)] = (value, info)
    return info


def _walk_level(recorder: Recorder, call: Pending, entry: TracebackType,
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any] | None:  # fmt: skip
    """Walk one forward of the chain up to its failing line and through the pieces of the
    failing expression; the calls met are recorded as `call`'s children. Returns the
    expression's positional arguments as walked (None: the forward could not be walked)."""
    from inspector.engine.diagnose.dataflow import inputs_as_values

    frame = entry.tb_frame
    walk = Walk(Trace([]), [])
    walk.recorder = recorder
    values, kw = inputs_as_values(args, kwargs)
    stopped = walk.frame(frame, entry.tb_lineno, call, values, kw)  # type: ignore[arg-type]
    if stopped is None:
        return None
    node = stopped.expression(frame.f_code, entry.tb_lasti)
    if node is None:
        return []
    positional = [stopped.value(p) for p in getattr(node, "args", ())]
    for k in getattr(node, "keywords", ()):
        stopped.value(k.value)
    return positional


def _forward_frames(error: BaseException, chain: list[tuple[nn.Module, Any, Any]]
                    ) -> list[TracebackType | None]:  # fmt: skip
    """For each call of the chain, the traceback entry of its forward (None: not found)."""
    found: list[TracebackType | None] = [None] * len(chain)
    level = -1
    waiting = False
    tb = error.__traceback__
    while tb is not None:
        frame: FrameType = tb.tb_frame
        code = frame.f_code
        if code.co_name == "_call_impl" and level + 1 < len(chain):
            if frame.f_locals.get("self") is chain[level + 1][0]:
                level += 1
                waiting = True
        elif waiting and code.co_name != "_wrapped_call_impl":
            module = chain[level][0]
            forward = getattr(type(module), "forward", None)
            if getattr(forward, "__code__", None) is code:
                found[level] = tb
            waiting = False
        tb = tb.tb_next
    return found


def _caller_site(error: BaseException) -> SourceLine | None:
    """The line that called the model: the frame before the first module call."""
    site = None
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("_call_impl", "_wrapped_call_impl"):
            return site
        site = source_line(code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return None
