"""The recorder: module hooks that turn a forward pass into a list of Call records.

Registration and removal belong to the hook owner (inspector.engine.hooks): callers attach
inside the `try` whose `finally` runs `detach()`. Hooks always return None: a forward hook
that returns a value replaces the module's output. A fault inside the recorder turns it off
with one warning; the user's forward goes on untouched.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from inspector.engine.activity import UNIT_TYPES, Finish, describe_units, device_units
from inspector.engine.describe import Describer
from inspector.engine.gradients import GradientRecorder
from inspector.engine.hooks import (
    HookSet,
    RecursionHeadroom,
    is_muted,
    muted,
    opaque_kind,
    runs_below,
    until_done,
)
from inspector.engine.naming import ModuleNames, ParamCounter, call_site, module_line
from inspector.engine.records import (
    Call,
    Struct,
    TensorInfo,
    Units,
    Value,
    exception_text,
    positional_builder,
)
from inspector.engine.stats import on_device
from inspector.engine.values import ValueStore

_new_call = positional_builder(Call)


class InspectorWarning(UserWarning):
    """Raised as a warning when the inspector turns itself off; the user's run goes on."""


class Listener(Protocol):
    """Receives each call as it starts and ends (the stepper pauses here)."""

    def call_started(self, call: Call) -> None: ...

    def call_finished(self, call: Call) -> None: ...


class GradientListener(Protocol):
    """A listener that also hears each call whose gradient arrived in the backward pass."""

    def gradient_ready(self, call: Call) -> None: ...


class Stop(BaseException):
    """Raised by a listener to end the forward pass now (the user quit the debugger)."""


@dataclasses.dataclass
class Failure:
    """A call that raised: the live pieces a diagnosis needs, dropped after it ran."""

    seq: int
    module: nn.Module | Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: BaseException


@dataclasses.dataclass(slots=True)
class _Open:
    seq: int
    key: object  # the module or function, compared by identity
    started: float
    exc_before: BaseException | None
    paused_before: float = 0.0  # the recorder's paused total when the call started
    substituted: BaseException | None = None  # dry runs: failed, but returned a stand-in
    redescribe: bool = False  # its parameter count was not final when it started (lazy)
    frame: Any = None  # the frame that runs the call: its children run below it


class Recorder:
    """Records module calls into `calls`; attach to a model, or globally, then `detach()`."""

    def __init__(
        self,
        *,
        stats: bool = True,
        listener: Listener | None = None,
        per_pass: bool = False,
        gradients: bool = False,
    ) -> None:
        self.describer = Describer(stats=stats)
        self.listener = listener
        self.calls: list[Call] = []
        self.modules: list[weakref.ref[Any]] = []  # the live module of each call, by seq
        self.failures: list[Failure] = []
        self.fault: Exception | None = None
        self.names = ModuleNames()
        self._counts: dict[str, int] = {}
        self._hooks = HookSet(self.enter, self.exit)
        self._headroom = RecursionHeadroom()
        self._local = threading.local()
        # Only calls made in this thread are recorded (a debugger's own model thread); None:
        # every thread.
        self.thread: int | None = None
        # Called at every module call before anything else (a held Ctrl+C is raised there).
        self.poll: Callable[[], None] | None = None
        self._warned = False
        # id of a module (or function) -> (a weak reference to it, its line, its parameters,
        # its type name)
        self._module_info: dict[int, tuple[weakref.ref[Any], str, int, str]] = {}
        self._params = ParamCounter()
        self._global = False
        self._paused_s = 0.0  # time spent inside listeners (a person looking), not computing
        # Sessions over a training loop: a root module called again starts a new pass, and
        # the record restarts (memory stays bounded by one pass).
        self.per_pass = per_pass
        self.pass_index = 0
        self.values: ValueStore | None = None  # tensor values for heat maps, within a budget
        # Sessions: statistics only while someone looks (the stepper says when); a pause
        # while running free gets its call's statistics from the live values (with_stats).
        self.stats_when: Callable[[], bool] | None = None
        self._stats = stats
        self._live: tuple[int, tuple[Any, ...], dict[str, Any], Any] | None = None
        # Calls whose records hold statistics still on an accelerator (Describer.settle).
        self._unsettled: set[int] = set()
        self._units_ready: dict[int, tuple[Finish, Any]] = {}
        self.gradients: GradientRecorder | None = None
        if gradients:
            self.gradients = GradientRecorder(
                self.calls,
                on_gradient=self._gradient_ready,
                on_fault=self._fail,
                device=self.describer.device,
            )

    # -- lifecycle -------------------------------------------------------------------------

    def attach(self, model: nn.Module, name: str = "") -> None:
        """Hook every module of `model`; paths as in `named_modules()`, prefixed by `name`.

        Call it inside the `try` whose `finally` calls `detach()`: an interrupt in the middle
        leaves nothing behind once detach ran. ScriptModules and compiled modules are
        recorded at their boundary, their inside is not.
        """
        self.names.add_root(model, name)
        # enter(module, args, kwargs) and exit(module, args, kwargs, output) are the hooks
        # themselves: a hook runs right after an op has pushed Python's code and data out of
        # the caches, and every frame on its way costs a few microseconds there.
        hooked = self._hooks.add(model)
        self._describe_modules(hooked)

    def _describe_modules(self, modules: list[nn.Module]) -> None:
        """Each module's line and parameter count, now rather than at its first call: done
        here in one loop, warm, instead of in a hook that runs right after an op has pushed
        Python's data out of the caches (3-5x slower there). A lazy module is described when
        it runs, once its parameters exist; anything that fails here is tried again then."""
        try:
            for module in modules:
                if not isinstance(module, LazyModuleMixin):
                    self._describe_callable(module)
        except Exception:
            pass

    def attach_global(self) -> None:
        """Hook every module call in the process; roots are named after the caller's variables."""
        self._global = True
        self._hooks.add_global()

    def detach(self) -> None:
        """Remove every hook, gradient hooks included. Safe to call twice; a KeyboardInterrupt
        landing inside is raised after everything is off."""
        until_done(self._detach)

    def _detach(self) -> None:
        self._stop_forward()
        if self.gradients is not None:
            self.gradients.remove()

    def stop_forward(self) -> None:
        """Remove the module hooks only; gradient hooks stay for the backward pass (a
        checkpointed model recomputes forwards during backward: they must not be recorded)."""
        until_done(self._stop_forward)

    def _stop_forward(self) -> None:
        self._hooks.remove()
        self._headroom.restore()
        self._warn_once()

    @property
    def attached(self) -> bool:
        return self._hooks.attached

    def entry_frames(self, count: int) -> None:
        """The inspector's own frames between the user's call and the model call: the
        recursion limit grows by them too (the model gets the depth it has plainly)."""
        self._headroom.entry_frames = count

    # -- recording --------------------------------------------------------------------------

    def enter(
        self,
        key: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        path: str | None = None,
    ) -> None:
        """A call of `key` (a module, or a function given with its `path`) starts."""
        if (
            self.fault is not None
            or (self.thread is not None and self.thread != _ident())
            or is_muted()
        ):
            return
        if self.poll is not None:
            self.poll()
        headroom = self._headroom
        open_calls = getattr(self._local, "stack", None)  # inline: no frame to spare here
        headroom.hold(len(open_calls) + 1 if open_calls else 1, True)
        try:
            policy = self.stats_when
            self.describer.stats = self._stats and (policy is None or policy())
            touched = self.describer.touched
            call = self._start(key, args, kwargs, path)
            if self.describer.touched != touched:
                self._unsettled.add(call.seq)
        except Exception as exc:
            self._fail(exc)
            return
        if self.listener is not None:
            self._live = (call.seq, args, kwargs, None)
            try:
                self._notify(self.listener.call_started, call)
            finally:
                self._live = None
        headroom.hold(len(self._stack()), False)

    def exit(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """The call of `key` ends, with `output`, or with the exception now being handled."""
        if (
            self.fault is not None
            or (self.thread is not None and self.thread != _ident())
            or is_muted()
        ):
            return
        open_calls = getattr(self._local, "stack", None)  # inline: no frame to spare here
        self._headroom.hold(len(open_calls) if open_calls else 0, True)
        try:
            policy = self.stats_when
            self.describer.stats = self._stats and (policy is None or policy())
            touched = self.describer.touched
            call = self._finish(key, args, kwargs, output)
            if call is not None and self.describer.touched != touched:
                self._unsettled.add(call.seq)
        except Exception as exc:
            self._fail(exc)
            return
        if call is not None and self.listener is not None:
            self._live = (call.seq, args, kwargs, output)
            try:
                self._notify(self.listener.call_finished, call)
            finally:
                self._live = None
        self._headroom.hold(len(self._stack()), False)

    def with_stats(self, call: Call) -> Call:
        """`call` as a pause shows it: with the statistics of its live tensors when they were
        skipped (a pause reached while running free; only the call being notified has live
        values), and every call's statistics that wait on an accelerator read (`settle`)."""
        live = self._live
        if self._stats and not self.describer.stats and live is not None and live[0] == call.seq:
            call = self._restate(call, live)
        self.settle()
        return self.calls[call.seq] if call.seq < len(self.calls) else call

    def _restate(self, call: Call, live: tuple[int, tuple[Any, ...], dict[str, Any], Any]) -> Call:
        seq, args, kwargs, output = live
        describe = self.describer.describe
        self.describer.stats = True
        touched = self.describer.touched
        try:
            inputs = tuple(describe(a) for a in args)
            kw = Struct("kwargs", tuple((k, describe(v)) for k, v in kwargs.items()))
            outputs = call.outputs
            if call.status == "ok":
                outputs = describe(output, producer=seq)
        finally:
            self.describer.stats = False
        if self.describer.touched != touched:
            self._unsettled.add(seq)
        call = dataclasses.replace(
            call, inputs=inputs, kwargs=kw if kwargs else None, outputs=outputs
        )
        self.calls[seq] = call
        return call

    def settle(self) -> None:
        """Bring the statistics computed on accelerators to the host, one transfer per
        device, and put them into the calls' records. A no-op on the CPU."""
        if not self._unsettled and not len(self.describer.device):
            return
        seqs, self._unsettled = self._unsettled, set()
        try:
            infos = self.describer.settle()
        except Exception as exc:  # a device error: the records keep stats=None
            self._units_ready.clear()
            self._fail(exc)
            return
        units, self._units_ready = self._units_ready, {}
        for seq in sorted(seqs):
            if seq >= len(self.calls):
                continue
            call = self.calls[seq]
            outputs = _with_infos(call.outputs, infos)
            found = call.units
            if seq in units:
                finish, values = units[seq]
                found = finish(values, outputs)
            self.calls[seq] = dataclasses.replace(
                call,
                inputs=_with_infos(call.inputs, infos),
                kwargs=_with_infos(call.kwargs, infos),
                outputs=outputs,
                units=found,
            )
        if self.gradients is not None:
            self.gradients.refresh()

    def _stack(self) -> list[_Open]:
        stack: list[_Open] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _start(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any], path: str | None):
        stack = self._stack()
        frame: Any = sys._getframe(2)  # above _start and enter: the module's own call frame
        if frame.f_code is self._hooks.global_pre_code:
            frame = frame.f_back
        if stack and not runs_below(frame, stack[-1].frame):
            _drop_ended(stack, frame)  # a KeyboardInterrupt ended them: torch ran no exit hook
        parent = stack[-1].seq if stack else None
        if path is None:
            parent_path = self.calls[parent].path if parent is not None else None
            path = self.names.path(key, parent_path)
        if self.per_pass and parent is None and path in self._counts:
            self.new_pass()
        index = self._counts.get(path, 0)
        self._counts[path] = index + 1
        seq = len(self.calls)
        ref, line, params, final, type_name = self._describe_callable(key)
        describe = self.describer.describe
        if len(args) == 1 and isinstance(args[0], torch.Tensor):
            inputs: tuple[Any, ...] = (self.describer.tensor(args[0], None),)
        else:
            inputs = tuple([describe(a) for a in args])
        call = _new_call(
            seq,
            path,
            index,
            type_name,
            len(stack),
            parent,
            inputs,
            Struct("kwargs", tuple([(k, describe(v)) for k, v in kwargs.items()]))
            if kwargs
            else None,
            None,  # outputs
            "running",
            None,  # error
            line,
            params,
            0.0,  # duration_ms
            call_site(2),  # above _start and enter
            None,  # units
            None,  # grad
        )
        self.calls.append(call)
        self.modules.append(ref)
        if self.values is not None and parent is None:
            self.values.keep(seq, "in", (*args, *kwargs.values()))
        opened = _Open(seq, key, time.perf_counter(), sys.exc_info()[1], self._paused_s)
        opened.redescribe = not final
        opened.frame = frame
        stack.append(opened)
        return call

    def _finish(
        self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> Call | None:
        stack = self._stack()
        # Unwind to the matching entry: a BaseException (KeyboardInterrupt) skips post hooks.
        while stack and stack[-1].key is not key:
            stack.pop()
        if not stack:
            return None
        opened = stack.pop()
        call = self.calls[opened.seq]
        if opened.redescribe:  # a lazy parameter got its shape during the call
            _, line, params, _, _ = self._describe_callable(key)
            call = dataclasses.replace(call, module_repr=line, params=params)
        in_flight = sys.exc_info()[1]
        paused = self._paused_s - opened.paused_before
        elapsed = (time.perf_counter() - opened.started - paused) * 1e3
        if output is None and in_flight is not None and in_flight is not opened.exc_before:
            self.failures.append(Failure(opened.seq, key, args, kwargs, in_flight))
            call = _ended(call, None, "error", exception_text(in_flight), elapsed)
        else:
            describer = self.describer
            if isinstance(output, torch.Tensor):
                outputs: Value = describer.tensor(output, opened.seq)
            else:
                outputs = describer.describe(output, producer=opened.seq)
            status, error = "ok", None
            if opened.substituted is not None:
                failed = opened.substituted
                status, error = "error", exception_text(failed)
            units = None
            if type(key).__name__ in UNIT_TYPES:  # activations: dead or saturated units
                with _OWN_OPS():  # a tensor subclass's own code never sees our reads
                    units = describe_units(key, output, outputs)
                    if units is None and describer.stats and isinstance(output, torch.Tensor):
                        self._units_on_device(opened.seq, key, output)
            call = _ended(call, outputs, status, error, elapsed, units)
            if self.gradients is not None:
                self.gradients.track(opened.seq, key, output)
            if self.values is not None:
                self.values.keep(opened.seq, "out", output)
        self.calls[opened.seq] = call
        return call

    def _units_on_device(self, seq: int, key: Any, output: torch.Tensor) -> None:
        """Dead or saturated units of an output on an accelerator, read at `settle()`."""
        if not on_device(output):
            return
        deferred = device_units(key, output)
        if deferred is None:
            return
        packet, finish = deferred

        def done(values: Any) -> None:
            self._units_ready[seq] = (finish, values)

        self.describer.device.add(packet, done)
        self.describer.touched += 1

    def lookup(self, t: Any) -> Any:
        """The TensorInfo already given to live tensor `t` in this pass, or None."""
        return self.describer.registry.lookup(t, any_version=True)

    def new_pass(self) -> None:
        """Start the record of a new pass (in place: listeners keep their reference)."""
        self.describer.forget_waiting()
        self._unsettled.clear()
        self._units_ready.clear()
        self.calls.clear()
        self.modules.clear()
        self.failures.clear()
        self._counts.clear()
        # A new pass describes its modules anew: one replaced since (or a parameter swapped)
        # must not keep the line and count of the old one.
        self._module_info.clear()
        self._params = ParamCounter()
        if self.gradients is not None:
            self.gradients.new_pass()
        if self.values is not None:
            self.values.clear()
        self.pass_index += 1

    def current(self) -> int | None:
        """The seq of the innermost call running in this thread."""
        stack = self._stack()
        return stack[-1].seq if stack else None

    def mark_substituted(self, exc: BaseException) -> None:
        """The innermost running call failed with `exc` but returns a stand-in (dry runs)."""
        stack = self._stack()
        if stack:
            stack[-1].substituted = exc

    def _describe_callable(self, key: Any) -> tuple[weakref.ref[Any], str, int, bool, str]:
        """(a weak reference to it, the module's line, its parameter count, whether that
        count is final, its type name), once per module per pass; the count is not final
        while a lazy parameter below the module has no shape yet."""
        cached = self._module_info.get(id(key))
        if cached is not None and cached[0]() is key:
            return cached[0], cached[1], cached[2], True, cached[3]
        if isinstance(key, nn.Module):
            opaque = opaque_kind(key)
            if opaque is None:
                type_name, line = type(key).__name__, module_line(key)
            else:
                type_name = _original_type(key)
                line = f"{type_name} ({opaque}: its inside is not recorded)"
            params, final = self._params.count(key)
        else:
            line, params, final = _function_name(key), 0, True
            type_name = line
        ref = _weak(key)
        if final:
            self._module_info[id(key)] = (ref, line, params, type_name)
        return ref, line, params, final, type_name

    def _notify(self, method: Callable[[Call], None], call: Call) -> None:
        started = time.perf_counter()
        try:
            with muted():  # what a front end runs while it looks is not the user's pass
                method(call)
        except Stop:
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._paused_s += time.perf_counter() - started

    def _gradient_ready(self, call: Call) -> None:
        listener = self.listener
        ready = getattr(listener, "gradient_ready", None)
        if ready is not None:
            self._notify(ready, call)

    def _fail(self, exc: Exception) -> None:
        """Stop recording: every hook returns at once from now on. The hooks come off here
        when they can, and for sure in `detach()`, which callers run in a `finally` (deep in
        a recursion there may be no room left to remove anything here)."""
        if self.fault is not None:
            return
        self.fault = exc
        try:  # noqa: SIM105 (no context manager: no frames to spare near the recursion limit)
            self.detach()
        except RecursionError:
            pass
        self._warn_once()

    def _warn_once(self) -> None:
        if self.fault is None or self._warned:
            return
        try:
            warnings.warn(
                f"torch-inspector stopped recording after an internal error "
                f"({exception_text(self.fault)}); the model runs on unchanged",
                InspectorWarning,
                stacklevel=4,
            )
        except RecursionError:  # no room to warn here: detach() warns
            return
        self._warned = True

    # -- functions that are not modules (a loss given as a plain function) --------------

    def call_function(self, path: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` recorded as a call named `path`."""
        self.enter(fn, args, {}, path=path)
        try:
            result = fn(*args)
        except Exception:
            self.exit(fn, args, {}, None)
            raise
        self.exit(fn, args, {}, result)
        return result

    def failure_for(self, exc: BaseException | None) -> Failure | None:
        """The innermost recorded call that raised `exc` (or the last failure)."""
        if exc is None:
            return None
        for failure in self.failures:
            if failure.exception is exc:
                return failure
        # `raise X from e` inside a forward: the recorded failure is X's cause
        for failure in self.failures:
            if failure.exception is exc.__cause__ or failure.exception is exc.__context__:
                return failure
        return None

    def release(self) -> None:
        """Drop the live references kept for diagnosis."""
        self.failures.clear()
        self.describer.registry.clear()


def _ended(
    call: Call, outputs: Any, status: str, error: str | None, ms: float, units: Units | None = None
) -> Call:
    """`call` with its end filled in (dataclasses.replace costs 4x more on this hot path)."""
    return _new_call(
        call.seq, call.path, call.index, call.type, call.depth, call.parent, call.inputs,
        call.kwargs, outputs, status, error, call.module_repr, call.params, ms, call.call_site,
        units, call.grad,
    )  # fmt: skip


def _with_infos(value: Any, infos: dict[int, TensorInfo]) -> Any:
    """`value` (a described value) with the TensorInfos named by id in `infos` replaced."""
    if isinstance(value, TensorInfo):
        return infos.get(id(value), value)
    if isinstance(value, tuple):
        return tuple(_with_infos(v, infos) for v in value)
    if isinstance(value, Struct):
        return Struct(value.type, tuple((k, _with_infos(v, infos)) for k, v in value.fields))
    return value


def _function_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _original_type(module: nn.Module) -> str:
    inner = getattr(module, "_orig_mod", None)
    if inner is not None:
        return type(inner).__name__
    name = getattr(module, "original_name", None)  # a ScriptModule's Python class
    return name if isinstance(name, str) and name else type(module).__name__


_ident = threading.get_ident
_OWN_OPS = torch._C.DisableTorchFunction


def _drop_ended(stack: list[_Open], frame: Any) -> None:
    """Pop the open calls that ended without their exit hook (a BaseException unwound them:
    torch calls always-called hooks for an Exception only)."""
    while stack and not runs_below(frame, stack[-1].frame):
        stack.pop()


class _Dead:
    def __call__(self) -> None:
        return None


def _weak(obj: Any) -> weakref.ref[Any]:
    try:
        return weakref.ref(obj)
    except TypeError:
        return _Dead()  # type: ignore[return-value]
