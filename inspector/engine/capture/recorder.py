"""The recorder: module hooks that turn a forward pass into a list of Call records.

Registration and removal belong to the hook owner (inspector.engine.capture.hooks): callers attach
inside the `try` whose `finally` runs `detach()`. Hooks always return None: a forward hook
that returns a value replaces the module's output. A fault inside the recorder turns it off
with one warning; the user's forward goes on untouched.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

from inspector.engine.capture import layout
from inspector.engine.capture.call_records import finish_call, start_call
from inspector.engine.capture.describe import Describer
from inspector.engine.capture.events import InspectorWarning, Listener, Stop, stopped
from inspector.engine.capture.gradients import GradientRecorder
from inspector.engine.capture.hooks import (
    _MUTE,
    HookSet,
    RecursionHeadroom,
    is_muted,
    muted,
    until_done,
)
from inspector.engine.capture.naming import ModuleFacts, ModuleNames
from inspector.engine.capture.open_calls import OpenCalls
from inspector.engine.capture.pass_record import Failure, PassRecord
from inspector.engine.capture.pending import PendingStats
from inspector.engine.capture.values import ValueStore
from inspector.engine.records import Call


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
        self.record = PassRecord()  # the only writer of the calls
        # Its lists, to read (emptied in place for a new pass, never replaced).
        self.calls: list[Call] = self.record.calls
        self.modules: list[weakref.ref[Any]] = self.record.modules
        self.failures: list[Failure] = self.record.failures
        self.fault: Exception | None = None
        self.names = ModuleNames()
        self._facts = ModuleFacts(self.names)
        self._pending = PendingStats(self.describer)
        self._hooks = HookSet(self.enter, self.exit)
        self._global_pre_code = self._hooks.global_pre_code
        self._headroom = RecursionHeadroom()
        self._open = OpenCalls()
        # Only calls made in this thread are recorded (a debugger's own model thread); None:
        # every thread.
        self.thread: int | None = None
        # Called at every module call before anything else (a held Ctrl+C is raised there).
        self.poll: Callable[[], None] | None = None
        self._warned = False
        self._global = False
        self._paused_s = 0.0  # time spent inside listeners (a person looking), not computing
        # Sessions over a training loop: a root module called again starts a new pass, and
        # the record restarts (memory stays bounded by one pass).
        self.per_pass = per_pass
        self.values: ValueStore | None = None  # tensor values for heat maps, within a budget
        # Sessions: statistics only while someone looks (the stepper says when); a pause
        # while running free gets its call's statistics from the live values (with_stats).
        self._stats_when: Callable[[], bool] | None = None
        self._kept: layout.Layout | None = None  # a session's modules, kept between passes
        self._stats = stats
        self._live: tuple[int, tuple[Any, ...], dict[str, Any], Any] | None = None
        self.gradients: GradientRecorder | None = None
        if gradients:
            self.gradients = GradientRecorder(
                self.record,
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
        # enter(module, args, kwargs) and exit(module, args, kwargs, output) are the hooks
        # themselves: a hook runs right after an op has pushed Python's code and data out of
        # the caches, and every frame on its way costs a few microseconds there.
        names, facts = self.names, self._facts
        fresh = not names._by_id and not facts.known
        if fresh:  # the same model traced again: its walks kept, checked (capture.layout)
            kept = layout.cached(model, name)
            modules = kept.modules() if kept is not None else None
            if kept is not None and modules is not None:
                names._roots[name] = kept.root
                self._hooks.add_modules(modules)
                layout.apply(kept, modules, names._by_id, facts.known)
                return
        names.add_root(model, name)
        hooked = self._hooks.add(model)
        facts.learn(hooked)
        if fresh:
            layout.remember(model, name, hooked, facts.known, self._hooks.opaque)

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

    @property
    def pass_index(self) -> int:
        return self.record.index

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
        # The hooks' hot path: every check below is a flag or a dict read where it can be
        # (bench/README.md, "What a recorded call costs", has the table).
        if self.fault is not None:
            return
        thread = self.thread
        if thread is not None and thread != _ident():
            return
        if _MUTE.__dict__.get("frames") and is_muted():
            return
        if self.poll is not None:
            self.poll()
        stack = self._open.stack()
        depth = len(stack)
        headroom = self._headroom
        if depth >= _SHALLOW_ENTER or not headroom.steady:
            headroom.hold(depth + 1, True)
        try:
            if self._stats_when is not None:
                self._stats_now()
            touched = self.describer.touched
            call = start_call(self, key, args, kwargs, path, stack)
            if self.describer.touched != touched:
                self._pending.note(call.seq)
        except Exception as exc:
            self._fail(exc)
            return
        if self.listener is not None:
            self._tell(self.listener.call_started, call, (call.seq, args, kwargs, None))
        if depth >= _SHALLOW_ENTER or not headroom.steady:
            headroom.hold(depth + 1, False)

    def exit(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """The call of `key` ends, with `output`, or with the exception now being handled."""
        if self.fault is not None:
            return
        thread = self.thread
        if thread is not None and thread != _ident():
            return
        if _MUTE.__dict__.get("frames") and is_muted():
            return
        stack = self._open.stack()
        depth = len(stack)
        headroom = self._headroom
        if depth >= _SHALLOW or not headroom.steady:
            headroom.hold(depth, True)
        try:
            if self._stats_when is not None:
                self._stats_now()
            touched = self.describer.touched
            call = finish_call(self, key, args, kwargs, output, stack)
            if call is not None and self.describer.touched != touched:
                self._pending.note(call.seq)
        except Exception as exc:
            self._fail(exc)
            return
        if call is not None and self.listener is not None:
            self._tell(self.listener.call_finished, call, (call.seq, args, kwargs, output))
        if depth >= _SHALLOW or not headroom.steady:
            headroom.hold(depth - 1 if depth else 0, False)

    @property
    def stats_when(self) -> Callable[[], bool] | None:
        """Sessions: statistics only while this says so (None: always, as `stats` says)."""
        return self._stats_when

    @stats_when.setter
    def stats_when(self, policy: Callable[[], bool] | None) -> None:
        self._stats_when = policy
        self.describer.stats = self._stats  # until the policy is asked, at the next call

    def _stats_now(self) -> None:
        policy = self._stats_when
        self.describer.stats = self._stats and (policy is None or policy())

    def with_stats(self, call: Call) -> Call:
        """`call` as a pause shows it: with the statistics of its live tensors when they were
        skipped (a pause reached while running free; only the call being notified has live
        values), and every call's statistics that wait on an accelerator read (`settle`)."""
        live = self._live
        if self._stats and not self.describer.stats and live is not None and live[0] == call.seq:
            call = self._pending.restate(self.record, call, *live[1:])
        self.settle()
        return self.calls[call.seq] if call.seq < len(self.calls) else call

    def settle(self) -> None:
        """Bring the statistics computed on accelerators to the host, one transfer per
        device, and put them into the calls' records. A no-op on the CPU."""
        if not self._pending.waiting():
            return
        try:
            self._pending.settle(self.record)
        except Exception as exc:  # a device error: the records keep stats=None
            self._fail(exc)
            return
        if self.gradients is not None:
            self.gradients.refresh()

    def lookup(self, t: Any) -> Any:
        """The TensorInfo already given to live tensor `t` in this pass, or None."""
        return self.describer.registry.lookup(t, any_version=True)

    def new_pass(self) -> None:
        """Start the record of a new pass (in place: listeners keep their reference)."""
        self._pending.clear()
        self.record.new_pass()
        self._renew_facts()
        if self.gradients is not None:
            self.gradients.new_pass()
        if self.values is not None:
            self.values.clear()

    def _renew_facts(self) -> None:
        """A new pass describes every module anew: a module replaced since, a parameter
        swapped or resized, an attribute its line shows changed. Where nothing below the
        hooked modules changed (checked as a trace of the same model checks its kept layout:
        capture/layout.py) the facts of the pass before are kept; else they are learned again
        here, in one warm loop, rather than one by one in the hooks after each module's first
        op (3-5x slower there: a session paid that at every call of every pass)."""
        facts = self._facts
        kept, self._kept = self._kept, None
        modules = kept.modules() if kept is not None else None
        facts.forget()
        if kept is not None and modules is not None:
            layout.apply(kept, modules, self.names._by_id, facts.known)
            self._kept = kept
            return
        hooked = self._hooks.hooked
        if hooked is None or self._global:
            return  # described as they run, as before
        facts.learn(hooked)
        self._kept = layout.of_modules(hooked, facts.known)

    def current(self) -> int | None:
        """The seq of the innermost call running in this thread."""
        return self._open.current()

    def mark_substituted(self, exc: BaseException) -> None:
        """The innermost running call failed with `exc` but returns a stand-in (dry runs)."""
        self._open.substitute(exc)

    def _tell(self, method: Callable[[Call], None], call: Call, live: Any) -> None:
        """A listener hears `call`; its live values stay at hand meanwhile (with_stats)."""
        self._live = live
        try:
            self._notify(method, call)
        finally:
            self._live = None

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
            warnings.warn(stopped(self.fault), InspectorWarning, stacklevel=4)
        except RecursionError:  # no room to warn here: detach() warns
            return
        self._warned = True

    def failure_for(self, exc: BaseException | None) -> Failure | None:
        """The innermost recorded call that raised `exc` (or whose exception it wraps)."""
        return self.record.failure_for(exc)

    def release(self) -> None:
        """Drop the live references kept for diagnosis."""
        self.record.release()
        self.describer.registry.clear()


_ident = threading.get_ident
# A hook with fewer calls open than this leaves the recursion limit as it is (see
# RecursionHeadroom.SHALLOW; in enter, the call starting counts too).
_SHALLOW = RecursionHeadroom.SHALLOW
_SHALLOW_ENTER = _SHALLOW - 1
