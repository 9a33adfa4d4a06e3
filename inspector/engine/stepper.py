"""The Stepper: pause a forward pass before and after module calls, under a controller's commands.

The recorder calls the stepper at each call's start ("enter") and end ("exit"), in the thread
running the model. When a stop condition holds, the stepper hands a `Pause` to its front end
(a callback that must be thread-safe) and blocks that thread until a command arrives from
another thread. Front ends: the TUI, and the headless `Debugger` (inspector.engine.debugger).

Commands follow pdb: step into (the very next event), step over (run the current call's
children without stopping), step out (to the end of the parent), continue (to a breakpoint,
an error or the end), run to a module (path glob), quit.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inspector.engine.gradients import rms
from inspector.engine.recorder import Stop
from inspector.engine.records import Call, Diagnosis, first_tensor


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


@dataclass(frozen=True)
class Breakpoint:
    """Where to stop while running free.

    `pattern` matches a call path (glob: "decoder.*.attn") or a module type ("Conv2d");
    `nth` limits it to the Nth call of that module (1-based); `condition` is a built-in name
    ("nan", "inf", "batch", "absmax>100", "dead", "saturated", "scale": the output's RMS 10x
    the input's or a tenth of it) or a callable on the finished
    Call, checked when a call ends; the gradient conditions ("grad-nan", "grad-norm>10") are
    checked when the backward pass reaches the call. A breakpoint with a condition and no
    pattern applies to every module.
    """

    pattern: str = "*"
    nth: int | None = None
    condition: str | Callable[[Call], bool] | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise TypeError(
                f"a breakpoint pattern is a path glob or a module type name, like 'fc*' or "
                f"'Conv2d'; got {self.pattern!r}"
            )
        if self.nth is not None and (not isinstance(self.nth, int) or self.nth < 1):
            raise ValueError(f"nth counts calls from 1; got {self.nth!r}")
        if isinstance(self.condition, str):
            known = self.condition in FORWARD_CONDITIONS or self.condition == "grad-nan"
            bounded = self.condition.startswith(("absmax>", "grad-norm>"))
            if bounded:
                try:
                    float(self.condition.split(">", 1)[1])
                except ValueError:
                    bounded = False
            if not known and not bounded:
                raise ValueError(f"unknown breakpoint condition {self.condition!r}: {CONDITIONS}")

    def matches_enter(self, call: Call) -> bool:
        return self.enabled and self.condition is None and self._matches(call)

    @property
    def needs_stats(self) -> bool:
        """Whether checking the condition reads tensor statistics."""
        if self.condition is None or self.on_gradient:
            return False
        return self.condition != "batch"

    @property
    def on_gradient(self) -> bool:
        """Whether the condition is checked in the backward pass."""
        return isinstance(self.condition, str) and self.condition.startswith("grad-")

    def matches_exit(self, call: Call, batch: int | None, leaf: bool = True) -> bool:
        if not self.enabled or self.condition is None or self.on_gradient:
            return False
        if self.condition == "scale" and not leaf:  # a container only passes it on
            return False
        return self._matches(call) and condition_holds(self.condition, call, batch)

    def matches_backward(self, call: Call) -> bool:
        if not self.enabled or not self.on_gradient or not self._matches(call):
            return False
        assert self.condition is not None
        return condition_holds(self.condition, call, None)

    def _matches(self, call: Call) -> bool:
        if self.nth is not None and call.index != self.nth - 1:
            return False
        return _path_matches(call, self.pattern) or (self.pattern == "*" and call.path == "")

    def describe(self) -> str:
        what = self.pattern + (f" (call {self.nth})" if self.nth else "")
        if self.condition is not None:
            cond = self.condition if isinstance(self.condition, str) else "condition"
            what += f" if {cond}"
        return what


FORWARD_CONDITIONS = ("nan", "inf", "batch", "dead", "saturated", "scale")
CONDITIONS = (
    "use nan, inf, batch, absmax>N, dead, saturated, scale, grad-nan, grad-norm>N or a callable"
)
SATURATED = 0.5  # the default Thresholds.saturated
SCALE_STEP = 10.0  # the default Thresholds.scale_step


def as_breakpoint(spec: Breakpoint | str) -> Breakpoint:
    """A Breakpoint as given, or parsed from the words every front end takes: `fc*`,
    `Conv2d`, `decoder.*.attn if nan`, `if absmax>100`, `fc1 #2`."""
    if isinstance(spec, Breakpoint):
        return spec
    if isinstance(spec, str):
        return parse_breakpoint(spec)
    raise TypeError(
        f"a breakpoint is a string like 'fc1', 'Conv2d', 'fc1 #2' or '* if nan', or a "
        f"Breakpoint; got {type(spec).__name__}"
    )


def parse_breakpoint(text: str) -> Breakpoint:
    """`fc*`, `Conv2d`, `decoder.*.attn if nan`, `if absmax>100`, `fc1 #2` (the 2nd call)."""
    text = text.strip()
    condition = None
    if " if " in f" {text} ":
        text, _, condition = f" {text} ".partition(" if ")
        text, condition = text.strip(), condition.strip()
    nth = None
    if "#" in text:
        text, _, count = text.partition("#")
        text = text.strip()
        nth = int(count) if count.strip().isdigit() else None
        if nth is None:
            raise ValueError(f"after # comes the call number, e.g. fc1 #2; got {count!r}")
    return Breakpoint(text or "*", nth=nth, condition=condition or None)


def condition_holds(condition: str | Callable[[Call], bool], call: Call, batch: int | None) -> bool:
    if callable(condition):
        return bool(condition(call))
    if condition == "dead":
        units = call.units
        out = first_tensor(call.outputs)
        whole = call.type in ("ReLU", "ReLU6") and out is not None and out.stats is not None
        return bool(units is not None and units.dead) or (
            whole and out.stats.zero_fraction == 1.0  # type: ignore[union-attr]
        )
    if condition == "saturated":
        units = call.units
        return units is not None and (units.saturated or 0.0) >= SATURATED
    if condition == "scale":  # the output's RMS 10x the input's, or a tenth of it
        x, y = first_tensor(call.inputs), first_tensor(call.outputs)
        if x is None or y is None or x.stats is None or y.stats is None:
            return False
        rx, ry = rms(x.stats), rms(y.stats)
        return rx > 0 and ry > 0 and not (1 / SCALE_STEP < ry / rx < SCALE_STEP)
    if condition == "grad-nan":
        return call.grad is not None and not call.grad.finite
    if condition.startswith("grad-norm>"):
        bound = float(condition.split(">", 1)[1])
        return call.grad is not None and any(g > bound for _, g, _ in call.grad.params)
    out = first_tensor(call.outputs)
    stats = out.stats if out is not None else None
    if condition == "nan":
        return stats is not None and stats.nan > 0
    if condition == "inf":
        return stats is not None and stats.inf > 0
    if condition == "batch":
        return out is not None and batch is not None and out.ndim >= 1 and out.shape[0] != batch
    if condition.startswith("absmax>"):
        bound = float(condition.split(">", 1)[1])
        return stats is not None and max(abs(stats.min), abs(stats.max)) > bound
    raise ValueError(f"unknown breakpoint condition {condition!r}: {CONDITIONS}")


@dataclass
class _Goal:
    """When to stop next: the mode a command set."""

    kind: str  # "into" | "over" | "out" | "continue" | "to" | "free"
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

    def __post_init__(self) -> None:
        self._goal = _Goal("into" if self.stop_at_start else "continue")
        self._cond = threading.Condition()
        self._command: tuple[str, str] | None = None
        self._quit = False
        self._abort = False
        self._interrupt = False
        self.pass_goal: int | None = None  # stop at the start of this pass (sessions)
        self._batch: int | None = None
        self._in_error = False  # an exception is unwinding: stop at its innermost call only
        self._grad_seen: set[int] = set()  # calls the backward pass already reached
        self._grad_hit: set[int] = set()  # calls a gradient breakpoint already stopped at
        self.paused: Pause | None = None

    # -- called in the model's thread --------------------------------------------------------

    def call_started(self, call: Call) -> None:
        if call.parent is None:
            x = first_tensor(call.inputs)
            self._batch = x.shape[0] if x is not None and x.ndim >= 2 else None
            self._in_error = False
            if call.seq == 0:
                self._grad_seen.clear()
                self._grad_hit.clear()
        reason = self._stop_reason(call, "enter")
        if reason is not None:
            self._pause(call, "enter", reason)

    def call_finished(self, call: Call) -> None:
        reason = self._stop_reason(call, "exit")
        if reason is not None:
            self._pause(call, "exit", reason)

    def gradient_ready(self, call: Call) -> None:
        """The backward pass brought `call` a gradient: its output's (the first event of a
        call, where stepping stops) or a parameter's (checked against breakpoints only)."""
        if self._abort:
            raise Stop("the debugger quit")
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
        if goal.kind == "into":
            return "step"
        if goal.kind == "over" and self._over_done(goal, call, phase):
            return "step"
        if goal.kind == "out" and phase == "exit" and call.seq == goal.seq:
            return "step"
        if goal.kind == "to" and phase == "enter" and _path_matches(call, goal.pattern):
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
        if self.enrich is not None:
            call = self.enrich(call)
        if self.pass_source is not None:
            self.pass_index = self.pass_source()
        pause = Pause(call, phase, reason, tuple(self.calls), self.pass_index, diagnosis)
        with self._cond:
            if self._quit:  # released while this pause was being made: nobody will answer
                kind, arg = self._command or ("detach", "")
                self._apply(kind, arg, pause)
                if self._abort:
                    raise Stop("the debugger quit")
                return
            self.paused = pause
            self._command = None
        self.on_pause(pause)
        with self._cond:
            while self._command is None and not self._quit:
                self._cond.wait()
            kind, arg = self._command or ("detach", "")
            self.paused = None
        self._apply(kind, arg, pause)
        if self._abort:
            raise Stop("the debugger quit")
        if self._interrupt:
            self._interrupt = False
            raise KeyboardInterrupt

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
        if self._goal.kind in ("into", "over", "out", "to"):
            return True
        return any(bp.enabled and bp.needs_stats for bp in self.breakpoints)

    # -- called from the controller's thread ----------------------------------------------

    def command(self, kind: str, arg: str = "") -> None:
        """Resume the paused model: into, over, out, continue, to (arg: a glob), detach, abort,
        interrupt.

        `detach` runs on without stopping; `abort` ends the pass with `Stop`; `interrupt`
        raises KeyboardInterrupt in the model's thread (Ctrl+C in the UI).
        """
        if kind not in ("into", "over", "out", "continue", "to", "detach", "abort", "interrupt"):
            raise ValueError(f"unknown stepper command {kind!r}")
        with self._cond:
            self._command = (kind, arg)
            self._cond.notify_all()

    def release(self, abort: bool = False) -> None:
        """Never block again (the front end went away); wake a paused model thread."""
        self._quit = True
        self._abort = self._abort or abort
        with self._cond:
            self._command = ("abort" if abort else "detach", "")
            self._cond.notify_all()


_MATCHES: dict[tuple[str, str, str], bool] = {}


def _path_matches(call: Call, pattern: str) -> bool:
    """A glob on the path or on any dotted tail of it ("fc2" matches "model.fc2", and
    "decoder.*.attn" matches "model.decoder.3.attn"), or the module type ("Conv2d").
    Remembered: a session asks the same question at every call of every pass."""
    key = (call.path, call.type, pattern)
    known = _MATCHES.get(key)
    if known is None:
        parts = call.path.split(".")
        known = call.type == pattern or any(
            fnmatch.fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts))
        )
        if len(_MATCHES) > 65536:
            _MATCHES.clear()
        _MATCHES[key] = known
    return known
