"""Breakpoints: where to stop while running free, and the one table of their conditions.

Every front end takes the same words: `fc*`, `Conv2d`, `decoder.*.attn if nan`, `if absmax>100`,
`fc1 #2` (the 2nd call). The command line (`run --break`), the Python API (`Breakpoint`,
`attach(break_on=...)`, `Debugger(breakpoints=...)`), the debugger's breakpoint dialog and
its help screen all read the conditions from `CONDITIONS` below.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector.engine.capture.activity import RELU_FAMILY
from inspector.engine.capture.gradients import rms
from inspector.engine.diagnose.anomalies import DEFAULTS
from inspector.engine.records import Call, Stats, first_tensor

# (the call, the number after ">" for a bounded condition, the root's batch size) -> stop?
Check = Callable[[Call, float, int | None], bool]


@dataclass(frozen=True)
class Condition:
    """One breakpoint condition: how it is written, when it is checked, what it means."""

    name: str  # "nan"; a bounded one is written name>N ("absmax>100")
    help: str  # one line for help screens and error messages
    check: Check
    phase: str = "exit"  # "exit": when a call ends; "backward": when its gradient arrives
    needs_stats: bool = True  # checking it reads tensor statistics
    bounded: bool = False
    leaf_only: bool = False  # a container only passes its child's output on
    # Once per pass: a NaN flows on through every later layer, the stop that matters is where
    # it first shows (the pause then says where it was made).
    once_per_pass: bool = False

    @property
    def spelling(self) -> str:
        return f"{self.name}>N" if self.bounded else self.name


def _out_stats(call: Call) -> Stats | None:
    out = first_tensor(call.outputs)
    return out.stats if out is not None else None


def _nan(call: Call, bound: float, batch: int | None) -> bool:
    stats = _out_stats(call)
    return stats is not None and stats.nan > 0


def _inf(call: Call, bound: float, batch: int | None) -> bool:
    stats = _out_stats(call)
    return stats is not None and stats.inf > 0


def _saturated(call: Call, bound: float, batch: int | None) -> bool:
    return call.units is not None and (call.units.saturated or 0.0) >= DEFAULTS.saturated


def _grad_nan(call: Call, bound: float, batch: int | None) -> bool:
    return call.grad is not None and not call.grad.finite


def _dead(call: Call, bound: float, batch: int | None) -> bool:
    if call.units is not None and call.units.dead:
        return True
    stats = _out_stats(call)
    return call.type in RELU_FAMILY and stats is not None and stats.zero_fraction == 1.0


def _scale(call: Call, bound: float, batch: int | None) -> bool:
    x, y = first_tensor(call.inputs), first_tensor(call.outputs)
    if x is None or y is None or x.stats is None or y.stats is None:
        return False
    rx, ry = rms(x.stats), rms(y.stats)
    step = DEFAULTS.scale_step
    return rx > 0 and ry > 0 and not (1 / step < ry / rx < step)


def _batch(call: Call, bound: float, batch: int | None) -> bool:
    out = first_tensor(call.outputs)
    return out is not None and batch is not None and out.ndim >= 1 and out.shape[0] != batch


def _absmax(call: Call, bound: float, batch: int | None) -> bool:
    stats = _out_stats(call)
    return stats is not None and max(abs(stats.min), abs(stats.max)) > bound


def _grad_norm(call: Call, bound: float, batch: int | None) -> bool:
    return call.grad is not None and any(g > bound for _, g, _ in call.grad.params)


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("nan", "the output holds a NaN (first place in a pass)", _nan,
                  once_per_pass=True),
        Condition("inf", "the output holds an Inf (first place in a pass)", _inf,
                  once_per_pass=True),
        Condition("batch", "the output's first dim is not the input's batch size", _batch,
                  needs_stats=False),
        Condition("absmax", "some output value exceeds N in magnitude", _absmax, bounded=True),
        Condition("dead", "a ReLU-family unit is zero for every sample", _dead),
        Condition("saturated",
                  f"at least {DEFAULTS.saturated:.0%} of sigmoid/tanh outputs at their bounds",
                  _saturated),
        Condition("scale",
                  f"the output's RMS is {DEFAULTS.scale_step:g}x the input's, or a "
                  f"{DEFAULTS.scale_step:g}th of it", _scale, leaf_only=True),
        Condition("grad-nan", "the gradient of the output holds a NaN or Inf", _grad_nan,
                  phase="backward", needs_stats=False),
        Condition("grad-norm", "a parameter's gradient norm exceeds N", _grad_norm,
                  phase="backward", needs_stats=False, bounded=True),
    )
}  # fmt: skip


def known_conditions() -> str:
    """`nan, inf, batch, absmax>N, ...`: for error messages."""
    return ", ".join(c.spelling for c in CONDITIONS.values())


def condition_of(text: str) -> tuple[Condition, float]:
    """The condition a string names and its bound (0 when it takes none); ValueError else."""
    name, sep, number = text.partition(">")
    found = CONDITIONS.get(name.strip())
    if found is not None and found.bounded == bool(sep):
        if not sep:
            return found, 0.0
        try:
            return found, float(number)
        except ValueError:
            pass
    raise ValueError(
        f"unknown breakpoint condition {text!r}: use {known_conditions()} or a callable"
    )


@dataclass(frozen=True)
class Breakpoint:
    """Where to stop while running free.

    `pattern` matches a call path (glob: "decoder.*.attn") or a module type ("Conv2d");
    `nth` limits it to the Nth call of that module (1-based); `condition` is one of
    `CONDITIONS` ("nan", "absmax>100", "grad-nan"...) or a callable on the finished Call.
    Conditions on a call's output are checked when the call ends, gradient conditions when
    the backward pass reaches it. A breakpoint with a condition and no pattern applies to
    every module.
    """

    pattern: str = "*"
    nth: int | None = None
    condition: str | Callable[[Call], bool] | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        named = None
        if not isinstance(self.pattern, str):
            raise TypeError(
                f"a breakpoint pattern is a path glob or a module type name, like 'fc*' or "
                f"'Conv2d'; got {self.pattern!r}"
            )
        if self.nth is not None and (not isinstance(self.nth, int) or self.nth < 1):
            raise ValueError(f"nth counts calls from 1; got {self.nth!r}")
        if isinstance(self.condition, str):
            named = condition_of(self.condition)  # refused now, not at the first call
        object.__setattr__(self, "_named", named)  # read at every call: parsed once

    _named: tuple[Condition, float] | None = field(default=None, init=False, repr=False,
                                                   compare=False)  # fmt: skip

    def matches_enter(self, call: Call) -> bool:
        return self.enabled and self.condition is None and self._matches(call)

    @property
    def needs_stats(self) -> bool:
        """Whether checking the condition reads tensor statistics."""
        if self.condition is None:
            return False
        named = self._named
        return named is None or named[0].needs_stats

    @property
    def once_per_pass(self) -> bool:
        """Whether it stops at its first match of a pass only."""
        return self._named is not None and self._named[0].once_per_pass

    @property
    def on_gradient(self) -> bool:
        """Whether the condition is checked in the backward pass."""
        named = self._named
        return named is not None and named[0].phase == "backward"

    def matches_exit(self, call: Call, batch: int | None, leaf: bool = True) -> bool:
        if not self.enabled or self.condition is None or self.on_gradient:
            return False
        named = self._named
        if named is not None and named[0].leaf_only and not leaf:
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
        return path_matches(call, self.pattern) or (self.pattern == "*" and call.path == "")

    def describe(self) -> str:
        what = self.pattern + (f" (call {self.nth})" if self.nth else "")
        if self.condition is not None:
            cond = self.condition if isinstance(self.condition, str) else "condition"
            what += f" if {cond}"
        return what


def condition_holds(condition: str | Callable[[Call], bool], call: Call, batch: int | None) -> bool:
    """Whether `condition` (a name from CONDITIONS or a callable) holds for `call`."""
    if callable(condition):
        return bool(condition(call))
    found, bound = condition_of(condition)
    return found.check(call, bound, batch)


def as_breakpoint(spec: Breakpoint | str) -> Breakpoint:
    """A Breakpoint as given, or parsed from the words every front end takes."""
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


_MATCHES: dict[tuple[str, str, str], bool] = {}


def path_matches(call: Call, pattern: str) -> bool:
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
