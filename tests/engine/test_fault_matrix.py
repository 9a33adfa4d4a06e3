"""Every entry point under every fault: the user's program cannot tell it was inspected.

For each (entry point, fault) a model is built twice from the same seed: one twin runs plainly,
the other under the entry point. Afterwards:

* the hooks are exactly as before (the user's intact, nothing of the inspector's left, in the
  modules' hook dicts and torch.nn.modules.module's global ones);
* parameters, buffers, attributes and inputs equal the plain twin's (for `check`, a dry run:
  equal to what they were before);
* the exception is the very object the user's code raised, with the plain call's message
  (re-raised, or in trace.error where the entry point records it);
* the output is bit-identical to the plain call's (values, dtype, requires_grad, grad_fn);
* the user's hooks fired as often as under the plain call;
* gc.isenabled() is as it was, and was on during every forward.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module

import inspector
from inspector.engine.control.debugger import Debugger, Finished
from tests.helpers import (
    diff_hooks,
    diff_state,
    global_hooks_restored,
    hooks_snapshot,
    message,
    min_recursion_limit,
    state,
    value,
)

DEBUGGER_TIMEOUT = 3.0
DEPTH = 300


class FaultError(Exception):
    pass


class BadStrError(Exception):
    """An exception whose __str__ itself raises: it reads an attribute never set."""

    def __str__(self) -> str:
        return f"expected 4, got {self.got}"  # type: ignore[attr-defined]


@dataclass
class Probe:
    """What the user's code saw, kept outside the model (a dry run may put the model back)."""

    raised: BaseException | None = None
    gc_in_forward: list[bool] = field(default_factory=list)
    user_hook_calls: int = 0
    global_hook_calls: int = 0

    def keep(self, exc: BaseException) -> BaseException:
        if self.raised is None:  # the first one: a second would come from running code twice
            self.raised = exc
        return exc


PROBE = Probe()


def _raise(kind: str) -> None:
    if kind == "raise":
        raise PROBE.keep(FaultError("the user's code failed"))
    if kind == "interrupt":
        raise PROBE.keep(KeyboardInterrupt())
    if kind == "bad_str":
        raise PROBE.keep(BadStrError())


class Model(nn.Module):
    """Side effects in forward: a counter, an in-place edit of an input, a cache attribute."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault
        self.embed: nn.Module = nn.Linear(4, 8)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 3)
        self.calls = 0
        self.last_norm = 0.0
        if fault == "script":
            self.embed = torch.jit.script(nn.Linear(4, 8))
        elif fault == "compiled":
            self.embed = torch.compile(nn.Linear(4, 8), backend="eager")
        elif fault == "deep":
            inner: nn.Module = nn.Linear(4, 8)
            for _ in range(DEPTH - 1):
                inner = nn.Sequential(inner)
            self.embed = inner

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        PROBE.gc_in_forward.append(gc.isenabled())
        self.calls += 1
        state.add_(1)
        h = self.act(self.embed(x))
        self.last_norm = float(h.detach().norm())
        _raise({"forward_raise": "raise", "forward_interrupt": "interrupt",
                "bad_str": "bad_str"}.get(self.fault, ""))  # fmt: skip
        return self.head(h)


def make_loss(fault: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(out, target)
        _raise({"loss_raise": "raise", "loss_interrupt": "interrupt"}.get(fault, ""))
        return loss

    return loss_fn


def counting_hook(module: nn.Module, args: Any, output: Any) -> None:
    PROBE.user_hook_calls += 1


def raising_hook(module: nn.Module, args: Any, output: Any) -> None:
    _raise("raise")


def interrupting_hook(module: nn.Module, args: Any, output: Any) -> None:
    _raise("interrupt")


def doubling_pre_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0] * 2, *args[1:])


def shifting_hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    return output + 1


def tripling_hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    return output * 3


def global_counting_hook(module: nn.Module, args: Any) -> None:
    PROBE.global_hook_calls += 1


FAULTS = [
    "forward_raise",
    "loss_raise",
    "hook_raise",
    "forward_interrupt",
    "loss_interrupt",
    "hook_interrupt",
    "bad_str",
    "script",
    "compiled",
    "deep",
    "hooks_modify",
]


@dataclass
class Case:
    model: Model
    args: tuple[torch.Tensor, torch.Tensor]
    target: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build(fault: str) -> Case:
    torch.manual_seed(0)
    model = Model(fault)
    model.act.register_forward_hook(counting_hook)
    if fault == "hook_raise":
        model.head.register_forward_hook(raising_hook)
    elif fault == "hook_interrupt":
        model.head.register_forward_hook(interrupting_hook)
    elif fault == "hooks_modify":
        model.embed.register_forward_pre_hook(doubling_pre_hook)
        model.act.register_forward_hook(shifting_hook)
        model.register_forward_hook(tripling_hook)
    x, state_, target = torch.randn(2, 4), torch.zeros(2), torch.randn(2, 3)
    return Case(model, (x, state_), target, make_loss(fault))


MISSING: Any = object()


@dataclass
class Outcome:
    raised: BaseException | None = None  # what reached the caller
    error: BaseException | None = None  # what the entry point recorded (trace.error)
    output: Any = MISSING
    loss: Any = MISSING


def user_code(case: Case) -> Outcome:
    """What the user's own script does: the forward, then the loss."""
    out = case.model(*case.args)
    loss = case.loss_fn(out, case.target)
    return Outcome(output=out, loss=loss)


def _debugger(case: Case) -> Outcome:
    d = Debugger(case.model, *case.args, loss_fn=case.loss_fn, target=case.target,
                 stop_at_start=False, timeout=DEBUGGER_TIMEOUT)  # fmt: skip
    event = d.start()
    for _ in range(100):
        if isinstance(event, Finished):
            break
        event = d.cont()
    assert isinstance(event, Finished), "the Debugger did not finish"
    t = event.trace
    return Outcome(error=t.error, output=t.output, loss=t.loss)


def _recorded(t: Any) -> Outcome:
    return Outcome(error=t.error, output=t.output, loss=t.loss)


def _within(*contexts: Callable[[], Any]) -> Callable[[Case], Outcome]:
    def run(case: Case) -> Outcome:
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context())
            return user_code(case)

    return run


def _set_trace(case: Case) -> Outcome:
    with redirect_stderr(io.StringIO()):
        inspector.set_trace()
        return user_code(case)


def _attach(case: Case, model: bool) -> Outcome:
    with redirect_stderr(io.StringIO()), inspector.attach(case.model if model else None):
        return user_code(case)


ENTRY_POINTS: dict[str, Callable[[Case], Outcome]] = {
    "plain": user_code,  # the control: the harness itself must pass here
    "trace": lambda c: _recorded(
        inspector.trace(c.model, *c.args, loss_fn=c.loss_fn, target=c.target)
    ),
    "diagnose": lambda c: _quiet(inspector.diagnose, c),
    "check": lambda c: _quiet(inspector.check, c),
    "explain": _within(inspector.explain),
    "attach_model": lambda c: _attach(c, model=True),
    "attach_global": lambda c: _attach(c, model=False),
    "set_trace": _set_trace,
    "Debugger": _debugger,
    "debug_headless": lambda c: _debug(c),
    "contributions": lambda c: _contributions(c),
    "report": lambda c: _report(c),
}


def _debug(case: Case) -> Outcome:
    with redirect_stdout(io.StringIO()):
        out = inspector.debug(case.model, *case.args, loss_fn=case.loss_fn, target=case.target)
    return Outcome(output=out)


def _quiet(entry: Callable[..., Any], case: Case) -> Outcome:
    entry(case.model, *case.args, loss_fn=case.loss_fn, target=case.target)
    return Outcome()


def _report(case: Case) -> Outcome:
    with redirect_stdout(io.StringIO()):
        return _recorded(
            inspector.report(case.model, *case.args, loss_fn=case.loss_fn, target=case.target)
        )


def _contributions(case: Case) -> Outcome:
    inspector.contributions(
        case.model, *case.args, layer="head", target=lambda out: case.loss_fn(out, case.target)
    )
    return Outcome()


# Entry points that record the model's exception instead of raising it.
RECORDING = {"trace", "report", "Debugger"}
# Entry points that return no exception at all for a failing model (KeyboardInterrupt aside).
QUIET = {"diagnose", "check"}
# An analysis that runs the model for its own purpose may leave the state as the plain call
# does, or put all of it back as a dry run does; anything in between is harm.
ISOLATED_OR_PLAIN = {"contributions"}


def run(entry: str, case: Case) -> Outcome:
    try:
        return ENTRY_POINTS[entry](case)
    except BaseException as exc:  # KeyboardInterrupt included: it is one of the faults
        return Outcome(raised=exc)


@contextlib.contextmanager
def _recursion_limit(limit: int | None) -> Iterator[None]:
    old = sys.getrecursionlimit()
    if limit is not None:
        sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


@pytest.fixture
def environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """A user's global hook present throughout; every global hook put back afterwards.

    Not for the deep model: any global hook sends every module call down torch's slower hook
    path (one more frame per level), the plain call's too, which would hide the frames the
    inspector's own hooks add.
    """
    with global_hooks_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch._logging.set_logs(dynamo=logging.CRITICAL)
        torch._dynamo.reset()
        deep = request.node.callspec.params["fault"] == "deep"
        handle = (
            None if deep else torch_module.register_module_forward_pre_hook(global_counting_hook)
        )
        try:
            yield
        finally:
            if handle is not None:
                handle.remove()
            torch._logging.set_logs()


def _deep_limit() -> int:
    """A recursion limit the plain deep call runs under from here, with room for an entry
    point's own frames at the top of the stack (not per module level)."""
    case = build("deep")
    need = min_recursion_limit(lambda: user_code(case))
    return need + 100


def _expected_exception(
    entry: str, plain: BaseException | None, seen: BaseException | None
) -> tuple[str, str]:
    """Where the user's exception must show up: ("raised" | "error" | "none", why)."""
    if plain is None:
        return "none", "the plain call succeeds"
    if entry == "check" and seen is None:
        return "none", "the dry run did not reach the user's failing code"
    if isinstance(plain, KeyboardInterrupt):
        return "raised", "Ctrl+C reaches the caller"
    if entry in RECORDING:
        return "error", "recorded, never raised"
    if entry in QUIET:
        return "none", "explained, never raised"
    return "raised", "re-raised unchanged"


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_the_program_cannot_tell_it_was_inspected(entry: str, fault: str) -> None:
    global PROBE
    assert gc.isenabled()
    limit = _deep_limit() if fault == "deep" else None

    with _recursion_limit(limit):
        PROBE = Probe()
        twin = build(fault)
        plain = run("plain", twin)
        plain_probe, plain_state = PROBE, state(twin.model, *twin.args)
        assert plain_probe.gc_in_forward == [True]

        PROBE = Probe()
        case = build(fault)
        before_hooks = hooks_snapshot(case.model)
        before_state = state(case.model, *case.args)
        got = run(entry, case)

    problems = _problems(
        entry, plain, plain_probe, plain_state, got, case, before_hooks, before_state
    )
    assert not problems, f"{entry} under {fault}:\n  " + "\n  ".join(problems)


def _problems(
    entry: str,
    plain: Outcome,
    plain_probe: Probe,
    plain_state: dict[str, Any],
    got: Outcome,
    case: Case,
    before_hooks: dict[str, Any],
    before_state: dict[str, Any],
) -> list[str]:
    """Every way the inspected run differs from the plain one, one line each."""
    problems: list[str] = []
    where, why = _expected_exception(entry, plain.raised, PROBE.raised)
    if entry == "Debugger" and where == "raised" and got.raised is None:
        where = "error"  # a KeyboardInterrupt in the worker may end the pass instead
    shown = {"raised": got.raised, "error": got.error}.get(where)
    if where == "none":
        if got.raised is not None or got.error is not None:
            problems.append(f"exception: {why}, got raised={got.raised!r} error={got.error!r}")
    elif shown is not PROBE.raised or (where == "error" and got.raised is not None):
        problems.append(
            f"exception: {why}: expected the user's own {PROBE.raised!r} as {where}, got "
            f"raised={got.raised!r} error={got.error!r}"
        )
    elif plain.raised is not None and message(shown) != message(plain.raised):
        problems.append(f"message: {message(shown)!r} != plain {message(plain.raised)!r}")

    if not gc.isenabled():
        problems.append("gc: the garbage collector was left off")
    if not PROBE.gc_in_forward:
        problems.append("forward: the user's forward never ran")
    elif not all(PROBE.gc_in_forward):
        problems.append(f"gc: the forward ran with gc off {PROBE.gc_in_forward}")

    if entry == "Debugger" and got.raised is not None:
        _wait_for_hooks(before_hooks, case.model)  # an interrupted caller: the worker lets go
    problems += [f"hooks: {line}" for line in diff_hooks(before_hooks, hooks_snapshot(case.model))]

    if plain.raised is None:
        for name in ("output", "loss"):
            if getattr(got, name) is not MISSING and value(getattr(got, name)) != value(
                getattr(plain, name)
            ):
                problems.append(f"{name}: differs from the plain call's")

    now = state(case.model, *case.args)
    if entry == "check":  # a dry run: nothing of the user's changes
        problems += [
            f"state (vs before the dry run): {line}" for line in diff_state(before_state, now)
        ]
    else:
        changed = diff_state(plain_state, now)
        if entry in ISOLATED_OR_PLAIN and not diff_state(before_state, now):
            changed = []  # an analysis that put everything back is harmless too
        problems += [f"state: {line}" for line in changed]
        counts = [
            ("forward calls", len(PROBE.gc_in_forward), len(plain_probe.gc_in_forward)),
            ("user hook calls", PROBE.user_hook_calls, plain_probe.user_hook_calls),
            ("user global hook calls", PROBE.global_hook_calls, plain_probe.global_hook_calls),
        ]
        problems += [f"{what}: {n} (plain: {want})" for what, n, want in counts if n != want]
    return [p if len(p) < 400 else p[:400] + "..." for p in problems]


def _wait_for_hooks(before: dict[str, Any], model: nn.Module, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while hooks_snapshot(model) != before and time.monotonic() < deadline:
        time.sleep(0.05)
