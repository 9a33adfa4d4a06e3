"""Each forward runs exactly once per user call, under every entry point.

Random models whose forwards have side effects (in-place edits of inputs, counters, caches,
draws from the global RNG, a module called twice, optionally a failure) run plainly on one
twin and under an entry point on the other. The sequence of forward calls, the side effects
(model state, inputs, the RNG), the exception and the output must be the plain call's.
`check` is a dry run: there, nothing of the user's may change at all.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import inspector
from inspector.engine.control.debugger import Debugger, Finished
from tests.helpers import (
    diff_hooks,
    diff_state,
    global_hooks_restored,
    hooks_snapshot,
    state,
    value,
)

KINDS = ("plain", "counter", "edit_input", "cache", "dropout", "twice", "inplace_act")


@dataclass
class Log:
    """Kept outside the models: what the user's forwards did, in order."""

    calls: list[str] = field(default_factory=list)
    raised: BaseException | None = None


LOG = Log()


class Layer(nn.Module):
    def __init__(self, index: int, kind: str, fails: bool) -> None:
        super().__init__()
        self.index, self.kind, self.fails = index, kind, fails
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)
        self.count = 0
        self.cache: list[float] = []

    def forward(self, x: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        LOG.calls.append(f"layer{self.index}")
        if self.kind == "counter":
            self.count += 1
        elif self.kind == "edit_input":
            buf.add_(self.index + 1)
        elif self.kind == "cache":
            self.cache.append(round(float(x.detach().sum()), 3))
        y = self.fc(x)
        if self.kind == "dropout":
            y = self.drop(y)
        elif self.kind == "twice":
            y = self.fc(torch.tanh(y))
        elif self.kind == "inplace_act":
            y = torch.relu_(y * 1.0)
        if self.fails:
            exc = ValueError(f"layer {self.index} refuses this input")
            LOG.raised = LOG.raised or exc
            raise exc
        return y


class Root(nn.Module):
    def __init__(self, kinds: list[str], fail_at: int | None, edit_x: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(i, k, i == fail_at) for i, k in enumerate(kinds))
        self.edit_x = edit_x
        self.passes = 0

    def forward(self, x: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        LOG.calls.append("root")
        self.passes += 1
        if self.edit_x:
            x.mul_(2)
        for layer in self.layers:
            x = layer(x, buf)
        return x


@dataclass(frozen=True)
class Spec:
    kinds: tuple[str, ...]
    fail_at: int | None
    edit_x: bool


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    fail_at = draw(st.none() | st.integers(0, len(kinds) - 1))
    return Spec(tuple(kinds), fail_at, draw(st.booleans()))


def build(spec: Spec) -> tuple[Root, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = Root(list(spec.kinds), spec.fail_at, spec.edit_x)
    return model, (torch.randn(2, 4), torch.zeros(3))


@dataclass
class Result:
    raised: BaseException | None = None
    error: BaseException | None = None
    output: Any = None


def _user_call(model: Root, args: tuple[torch.Tensor, ...]) -> Result:
    return Result(output=model(*args))


def _recorded(t: Any) -> Result:
    return Result(error=t.error, output=t.output)


def _debugger(model: Root, args: tuple[torch.Tensor, ...]) -> Result:
    d = Debugger(model, *args, stop_at_start=False, timeout=5)
    event = d.start()
    for _ in range(50):
        if isinstance(event, Finished):
            return _recorded(event.trace)
        event = d.cont()  # the pause at an error
    raise AssertionError("the Debugger did not finish")


def _within(make: Callable[[Root], Any]) -> Callable[[Root, tuple[torch.Tensor, ...]], Result]:
    def run(model: Root, args: tuple[torch.Tensor, ...]) -> Result:
        with redirect_stderr(io.StringIO()), make(model):
            return _user_call(model, args)

    return run


def _set_trace(model: Root, args: tuple[torch.Tensor, ...]) -> Result:
    with redirect_stderr(io.StringIO()):
        inspector.set_trace()
        return _user_call(model, args)


def _quietly(fn: Callable[[], Any]) -> Any:
    with redirect_stdout(io.StringIO()):
        return fn()


ENTRY_POINTS: dict[str, Callable[[Root, tuple[torch.Tensor, ...]], Result]] = {
    "trace": lambda m, a: _recorded(inspector.trace(m, *a)),
    "diagnose": lambda m, a: (inspector.diagnose(m, *a), Result())[1],
    "explain": _within(lambda m: inspector.explain()),
    "explain_model": _within(inspector.explain),
    "attach_model": _within(inspector.attach),
    "attach_global": _within(lambda m: inspector.attach()),
    "set_trace": _set_trace,
    "Debugger": _debugger,
    "debug_headless": lambda m, a: Result(output=_quietly(lambda: inspector.debug(m, *a))),
    "report": lambda m, a: _recorded(_quietly(lambda: inspector.report(m, *a))),
    "contributions": lambda m, a: (inspector.contributions(m, *a, layer="layers.0"), Result())[1],
    "check": lambda m, a: (inspector.check(m, *a), Result())[1],
}
RECORDING = {"trace", "report", "Debugger"}
QUIET = {"diagnose", "check"}
# Entry points documented to put the global RNG back after their passes.
RNG_RESTORED = {"contributions", "check"}
# May leave the state as the plain call does, or put all of it back as a dry run does.
ISOLATED_OR_PLAIN = {"contributions"}


def _run(entry: Callable[[Root, tuple[torch.Tensor, ...]], Result], spec: Spec) -> Any:
    global LOG
    LOG = Log()
    model, args = build(spec)
    hooks = hooks_snapshot(model)
    before = state(model, *args)
    torch.manual_seed(1)
    rng = torch.random.get_rng_state()
    try:
        result = entry(model, args)
    except Exception as exc:  # the failing layer's ValueError, or the inspector's own
        result = Result(raised=exc)
    return result, LOG, model, args, hooks, before, rng


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with global_hooks_restored():
        yield


@pytest.mark.timeout(120)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@settings(
    max_examples=12,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure is reported as found
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(spec=specs())
def test_each_forward_runs_once_with_the_plain_calls_side_effects(entry: str, spec: Spec) -> None:
    plain, plain_log, twin, twin_args, _, _, _ = _run(_user_call, spec)
    plain_rng = torch.random.get_rng_state()
    got, log, model, args, hooks, before, rng = _run(ENTRY_POINTS[entry], spec)
    rng_after = torch.random.get_rng_state()

    assert not diff_hooks(hooks, hooks_snapshot(model)), diff_hooks(hooks, hooks_snapshot(model))
    if entry == "check":
        assert not diff_state(before, state(model, *args)), "the dry run changed the user's state"
        assert torch.equal(rng_after, rng), "the dry run drew from the global RNG"
        assert got.raised is None, repr(got.raised)
        return
    assert log.calls == plain_log.calls, "the forwards that ran, in order"
    changed = diff_state(state(twin, *twin_args), state(model, *args))
    if entry in ISOLATED_OR_PLAIN and not diff_state(before, state(model, *args)):
        changed = []  # an analysis that put everything back is harmless too
    assert not changed, changed
    if entry in RNG_RESTORED:
        assert torch.equal(rng_after, rng)
    else:
        assert torch.equal(rng_after, plain_rng), "the global RNG differs from the plain call's"

    if plain.raised is None:
        assert got.raised is None and got.error is None, (got.raised, got.error)
        if got.output is not None:
            assert value(got.output) == value(plain.output)
    elif entry in RECORDING:
        assert got.raised is None and got.error is log.raised
    elif entry in QUIET:
        assert got.raised is None
    else:
        assert got.raised is log.raised, repr(got.raised)
