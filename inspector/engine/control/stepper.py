"""The Stepper: pause a forward pass before and after module calls, under a controller's commands.

The recorder calls the stepper at each call's start ("enter") and end ("exit"), in the thread
running the model. When a stop condition holds, the stepper hands a `Pause` to its front end
(a callback that must be thread-safe) and blocks that thread until a command arrives from
another thread. Front ends: the TUI, and the headless `Debugger`
(inspector.engine.control.debugger).

Commands follow pdb: step into (the very next event), step over (run the current call's
children without stopping), step out (to the end of the parent), continue (to a breakpoint,
an error or the end), run to a module (path glob), quit.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.engine.capture.events import Stop
from inspector.engine.capture.recorder import Recorder
from inspector.engine.control.breakpoints import Breakpoint, path_matches
from inspector.engine.control.origin import pause_origin
from inspector.engine.diagnose import explain_failure
from inspector.engine.distributed import rank_info
from inspector.engine.distributed.advice import ddp_input_in_calls, peer_inputs, under_ddp
from inspector.engine.records import (
    Call,
    Diagnosis,
    Trace,
    first_tensor,
)


@dataclass(frozen=True, slots=True)
class Pause:
    """The model is stopped at `call` ("enter": before it runs, "exit": after it returned,
    "backward": the backward pass reached it, with the gradient of its output in `call.grad`)."""

    call: Call
    phase: str  # "enter" | "exit" | "backward"
    reason: str  # "step", "breakpoint fc*", "error", "nan"...
    calls: tuple[Call, ...]  # every call recorded so far in this pass
    pass_index: int = 0  # which forward pass of a session (attach)
    diagnosis: Diagnosis | None = None  # at an error: the explanation, computed right there

    @property
    def where(self) -> str:
        verb = {"enter": "before", "exit": "after"}.get(self.phase, "in the backward of")
        return f"{verb} {self.call.name} ({self.call.type})"


@dataclass
class _Goal:
    """When to stop next: the mode a command set."""

    kind: str  # "into" | "over" | "out" | "continue" | "to" | "next-call" (breakpoint())
    seq: int | None = None
    depth: int = 0
    pattern: str = ""


@dataclass
class Stepper:
    """The pause logic, shared by every front end. Thread-safe for one model thread."""

    on_pause: Callable[[Pause], None]
    breakpoints: list[Breakpoint] = field(default_factory=list)
    stop_at_start: bool = True
    pass_index: int = 0
    calls: Sequence[Call] = ()  # the recorder's list, read at each pause
    explain: Callable[[Call], Diagnosis | None] | None = None  # diagnosis at an error pause
    pass_source: Callable[[], int] | None = None  # the current pass of a session
    enrich: Callable[[Call], Call] | None = None  # statistics for a call about to pause
    module_of: Callable[[int], Any] | None = None  # the live module of a call (NaN origins)
    on_root: Callable[[Call], None] | None = None  # each pass's first call (runs under torchrun)

    def __post_init__(self) -> None:
        self._goal = _Goal("into" if self.stop_at_start else "continue")
        # Commands reach the paused model thread through a SimpleQueue, never a Condition:
        # its put and get are each one call into C, so a Ctrl+C in the sending thread lands
        # before or after a command, never inside a lock (a KeyboardInterrupt within
        # Condition.__enter__ keeps the lock held for good; one within Condition.wait's lock
        # juggling comes out as "RuntimeError: release unlocked lock"), and it is safe to
        # call from a signal handler.
        self._inbox: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._quit = False
        self._abort = False
        self._interrupt = False
        self.pass_goal: int | None = None  # stop at the start of this pass (sessions)
        self._batch: int | None = None
        self._in_error = False  # an exception is unwinding: stop at its innermost call only
        self._grad_seen: set[int] = set()  # calls the backward pass already reached
        self._grad_hit: set[int] = set()  # calls a gradient breakpoint already stopped at
        self._once: set[int] = set()  # once-per-pass breakpoints (ids) that stopped this pass
        self._spread: Breakpoint | None = None  # the NaN/Inf breakpoint of the coming pause
        self.paused: Pause | None = None
        self.last: tuple[Call, str] | None = None  # the latest call event, and its phase

    # -- called in the model's thread --------------------------------------------------------

    def call_started(self, call: Call) -> None:
        self.last = (call, "forward")  # where the program is: the hang view reads it
        if call.parent is None:
            if self.on_root is not None:
                self.on_root(call)
            x = first_tensor(call.inputs)
            self._batch = x.shape[0] if x is not None and x.ndim >= 2 else None
            self._in_error = False
            self._once.clear()
            if call.seq == 0:
                self._grad_seen.clear()
                self._grad_hit.clear()
        reason = self._stop_reason(call, "enter")
        if reason is not None:
            self._pause(call, "enter", reason)

    def call_finished(self, call: Call) -> None:
        self.last = (call, "returned")
        reason = self._stop_reason(call, "exit")
        if reason is not None:
            self._pause(call, "exit", reason)

    def gradient_ready(self, call: Call) -> None:
        """The backward pass brought `call` a gradient: its output's (the first event of a
        call, where stepping stops) or a parameter's (checked against breakpoints only)."""
        if self._abort:
            raise Stop("the debugger quit")
        self.last = (call, "backward")
        if self._quit:
            return
        first = call.seq not in self._grad_seen
        self._grad_seen.add(call.seq)
        reason = None
        if call.seq not in self._grad_hit:
            if self.enrich is not None and any(
                b.enabled and b.on_gradient for b in self.breakpoints
            ):
                call = self.enrich(call)  # gradient numbers still on a device: read them once
            for bp in self.breakpoints:
                if bp.matches_backward(call):
                    reason = f"breakpoint {bp.describe()}"
                    self._grad_hit.add(call.seq)
                    break
        if reason is None and first and self._goal.kind in ("into", "over"):
            reason = "step"
        if reason is not None:
            self._pause(call, "backward", reason)

    def _stop_reason(self, call: Call, phase: str) -> str | None:
        if self._abort:
            raise Stop("the debugger quit")
        if self._quit:
            return None
        if phase == "exit" and call.status == "error":
            if self._in_error:
                return None
            self._in_error = True
            return "error"
        if phase == "exit":
            self._in_error = False  # the exception was handled inside a forward
        if (
            self.pass_goal is not None
            and phase == "enter"
            and call.parent is None
            and self.pass_source is not None
            and self.pass_source() + 1 == self.pass_goal
        ):
            return f"pass {self.pass_goal}"
        goal = self._goal
        if goal.kind == "next-call":
            self._goal = _Goal("into")
            return "breakpoint()"
        if goal.kind == "into":
            return "step"
        if goal.kind == "over" and self._over_done(goal, call, phase):
            return "step"
        if goal.kind == "out" and phase == "exit" and call.seq == goal.seq:
            return "step"
        if goal.kind == "to" and phase == "enter" and path_matches(call, goal.pattern):
            return f"reached {goal.pattern}"
        settled = False
        for bp in self.breakpoints:
            if phase == "enter" and bp.matches_enter(call):
                return f"breakpoint {bp.describe()}"
            if phase != "exit":
                continue
            if bp.enabled and bp.needs_stats and not settled and self.enrich is not None:
                call, settled = self.enrich(call), True  # statistics still on a device
            if bp.matches_exit(call, self._batch, self._leaf(call)):
                if bp.once_per_pass:
                    if id(bp) in self._once:
                        continue
                    self._once.add(id(bp))
                    self._spread = bp
                return f"breakpoint {bp.describe()}"
        return None

    def _leaf(self, call: Call) -> bool:
        """No child ran inside `call` (the first child comes right after it, in pre-order)."""
        nxt = call.seq + 1
        return not (nxt < len(self.calls) and self.calls[nxt].parent == call.seq)

    @staticmethod
    def _over_done(goal: _Goal, call: Call, phase: str) -> bool:
        if goal.seq is not None:  # stepping over a call that had not run yet: its exit
            return phase == "exit" and call.seq == goal.seq
        return call.depth <= goal.depth  # from an exit: the next event at this level or up

    def _pause(self, call: Call, phase: str, reason: str) -> None:
        diagnosis = None
        if reason == "error" and self.explain is not None:
            try:
                diagnosis = self.explain(call)
            except Exception:  # the pause matters more than its explanation
                diagnosis = None
        elif self._spread is not None:
            self._spread = None
            at = self.pass_source() if self.pass_source is not None else self.pass_index
            diagnosis = pause_origin(self.calls, call, self.module_of, at)
        if self.enrich is not None:
            call = self.enrich(call)
        if self.pass_source is not None:
            self.pass_index = self.pass_source()
        pause = Pause(call, phase, reason, tuple(self.calls), self.pass_index, diagnosis)
        sent = self._latest()  # sent while nothing was paused: no answer to this pause
        if self._quit:  # released while this pause was being made: nobody will answer
            kind, arg = self._latest() or sent or ("detach", "")
            self._apply(kind, arg, pause)
            if self._abort:
                raise Stop("the debugger quit")
            return
        self.paused = pause
        try:
            self.on_pause(pause)
            # release() always sends a command after setting _quit: one get never misses it
            kind, arg = self._inbox.get()
            kind, arg = self._latest() or (kind, arg)  # the last word wins, as release's does
        finally:
            self.paused = None
        self._apply(kind, arg, pause)
        if self._abort:
            raise Stop("the debugger quit")
        if self._interrupt:
            self._interrupt = False
            raise KeyboardInterrupt

    def _latest(self) -> tuple[str, str] | None:
        """The last command waiting, the earlier ones dropped; None when none waits."""
        latest = None
        while True:
            try:
                latest = self._inbox.get_nowait()
            except queue.Empty:
                return latest

    def _apply(self, kind: str, arg: str, pause: Pause) -> None:
        call = pause.call
        if kind == "into":
            self._goal = _Goal("into")
        elif kind == "over":
            if pause.phase == "enter":
                self._goal = _Goal("over", seq=call.seq)
            else:
                self._goal = _Goal("over", depth=call.depth)
        elif kind == "out":
            # to the end of the enclosing call; from the top level, to the end
            self._goal = _Goal("continue" if call.parent is None else "out", seq=call.parent)
        elif kind == "continue":
            self._goal = _Goal("continue")
        elif kind == "to":
            self._goal = _Goal("to", pattern=arg)
        elif kind == "detach":
            self._quit = True
        elif kind == "abort":
            self._abort = True
        elif kind == "interrupt":
            self._quit, self._interrupt = True, True

    def wants_stats(self) -> bool:
        """Whether the calls now running need statistics: someone is stepping through them,
        or a breakpoint's condition reads them. Running free, shapes are enough."""
        if self._quit:
            return False
        if self._goal.kind in ("into", "over", "out", "to", "next-call"):
            return True
        return any(bp.enabled and bp.needs_stats for bp in self.breakpoints)

    def stop_next(self) -> bool:
        """`breakpoint()` in the code this stepper runs: stop at the next module call, as a
        step would. False when nobody is there to stop for (the debugger was closed)."""
        if self._quit or self._abort:
            return False
        self._goal = _Goal("next-call")
        return True

    # -- called from the controller's thread ----------------------------------------------

    def command(self, kind: str, arg: str = "") -> None:
        """Resume the paused model: into, over, out, continue, to (arg: a glob), detach, abort,
        interrupt.

        `detach` runs on without stopping; `abort` ends the pass with `Stop`; `interrupt`
        raises KeyboardInterrupt in the model's thread (Ctrl+C in the UI).
        """
        if kind not in ("into", "over", "out", "continue", "to", "detach", "abort", "interrupt"):
            raise ValueError(f"unknown stepper command {kind!r}")
        self._inbox.put((kind, arg))  # one call: a Ctrl+C lands before or after it

    def release(self, abort: bool = False) -> None:
        """Never block again (the front end went away); wake a paused model thread.

        Takes no lock: safe from a signal handler, and from a thread a Ctrl+C may interrupt.
        """
        self._abort = self._abort or abort  # before _quit: a pause that sees _quit sees this
        self._quit = True
        self._inbox.put(("abort" if abort else "detach", ""))


def explain_recorded(recorder: Recorder, call: Call) -> Diagnosis | None:
    """The diagnosis of a failed call while its exception is still unwinding."""
    failure = next((f for f in recorder.failures if f.seq == call.seq), None)
    if failure is None:
        return None
    recorder.settle()
    record = Trace(list(recorder.calls), error=failure.exception)
    diag = explain_failure(record, failure, failure.exception, recorder.modules, recorder.lookup)
    ranks = rank_info()
    if diag is not None and ranks is not None:  # inside DDP: this rank's data first
        given = ddp_input_in_calls(record.calls, call)
        if given is not None:
            diag = under_ddp(diag, ranks[0], given, peer_inputs())
    return diag


def stepping(
    recorder: Recorder,
    on_pause: Callable[[Pause], None],
    breakpoints: Sequence[Breakpoint],
    *,
    stop_at_start: bool,
    sessions: bool = False,
) -> Stepper:
    """A stepper over `recorder`, wired the one way every front end uses (the Debugger, a
    session, a script run): it hears every call, explains a failure where it stops, reads a
    pause's statistics. `sessions`: the recorder spans many passes and runs free most of the
    time, recording statistics only while the stepper says someone looks."""
    stepper = Stepper(
        on_pause=on_pause,
        breakpoints=list(breakpoints),
        stop_at_start=stop_at_start,
        calls=recorder.calls,
        enrich=recorder.with_stats,
    )
    stepper.explain = lambda call: explain_recorded(recorder, call)
    stepper.module_of = lambda seq: recorder.modules[seq]() if seq < len(recorder.modules) else None
    if sessions:
        stepper.pass_source = lambda: recorder.pass_index
        recorder.stats_when = stepper.wants_stats
    recorder.listener = stepper
    return stepper
