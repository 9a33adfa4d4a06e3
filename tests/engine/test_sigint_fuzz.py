"""Ctrl+C at any moment leaves nothing of the inspector's behind.

Three ways to land the interrupt: real SIGINTs at random moments (bench/sigint_fuzz.py, a few
dozen of them here, in a subprocess with a hard timeout so a hang fails instead of hanging the
run); a KeyboardInterrupt raised at a chosen line of the inspector's own code, swept over the
whole run of each entry point (deterministic: a failure names the line count to replay); and,
for the headless Debugger, whose model thread waits for the caller, a real SIGINT delivered at
every line and every return of the caller's thread, threading's and the caller's own code
between two Debugger calls included.
"""

from __future__ import annotations

import contextlib
import gc
import io
import linecache
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Container, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

import inspector
from inspector.engine.control.debugger import Debugger, Finished
from tests.helpers import (
    InterruptAtLine,
    diff_hooks,
    global_hooks_restored,
    hooks_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
NOTHING_LEFT = (
    "leaked hooks: 0",
    "user hooks lost: 0",
    "gc left off: 0",
    "hung afterwards: 0",
    "model threads left: 0",
    "SIGINT handler left: 0",
)


def _fuzz(*args: str) -> str:
    """bench/sigint_fuzz.py with `args` in a subprocess; its summary, checked."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench.sigint_fuzz", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the fuzz hung (60 s): {str(exc.stdout)[-2000:]}")
    out = run.stdout
    assert "sigint fuzz:" in out, (
        f"exit status {run.returncode}\n{out[-2000:]}\n{run.stderr[-2000:]}"
    )
    summary = out[out.index("sigint fuzz:") :]
    for line in NOTHING_LEFT:
        assert line in summary, f"{line!r} expected:\n{out[-3000:]}"
    assert run.returncode == 0, out[-3000:]
    return summary


@pytest.mark.timeout(90)
def test_real_sigints_at_random_moments_leave_nothing_behind() -> None:
    _fuzz("--interrupts", "60", "--seed", "0")


@pytest.mark.timeout(90)
def test_real_sigints_under_the_debugger_end_the_pass_and_reach_the_caller() -> None:
    """The headless Debugger alone, continued to an error and stepped call by call: every
    interrupt ends the pass (its model thread gone, its hooks off) and reaches the caller."""
    summary = _fuzz(
        "--entry", "Debugger", "--entry", "Debugger_steps", "--interrupts", "150", "--seed", "0"
    )  # fmt: skip
    assert " 0 swallowed" in summary, summary


# -- a KeyboardInterrupt at every n-th line of the inspector's code ----------------------------


class Blocks(nn.Module):
    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(4)])
        self.head = nn.Linear(8, 2)
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.fail:
            h = h.view(-1, 3)
        return self.head(h)


def user_hook(module: nn.Module, args: Any, output: Any) -> None:
    return None


def _user_call(model: nn.Module, x: torch.Tensor) -> None:
    with contextlib.suppress(RuntimeError):
        model(x)


def _within(make: Callable[[nn.Module], Any]) -> Callable[[nn.Module, torch.Tensor], None]:
    def run(model: nn.Module, x: torch.Tensor) -> None:
        with make(model):
            _user_call(model, x)

    return run


ENTRY_POINTS: dict[str, tuple[bool, Callable[[nn.Module, torch.Tensor], Any]]] = {
    "trace": (False, lambda m, x: inspector.trace(m, x)),
    "diagnose": (True, lambda m, x: inspector.diagnose(m, x)),
    "check": (True, lambda m, x: inspector.check(m, x)),
    "explain": (True, _within(lambda m: inspector.explain())),
    "attach_model": (True, _within(inspector.attach)),
    "attach_global": (False, _within(lambda m: inspector.attach())),
    "contributions": (False, lambda m, x: inspector.contributions(m, x, layer="head")),
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        yield


def _interrupted_at(entry: str, nth: int | None) -> tuple[int, list[str]]:
    """Run `entry` with a KeyboardInterrupt at its nth line; returns (lines run, problems)."""
    fails, run = ENTRY_POINTS[entry]
    torch.manual_seed(0)
    model, x = Blocks(fails), torch.randn(4, 8)
    for block in model.body:
        block.register_forward_hook(user_hook)
    before = hooks_snapshot(model)
    tracer = InterruptAtLine(nth)
    with _quiet(), contextlib.suppress(KeyboardInterrupt, Exception), tracer.installed():
        run(model, x)
    problems = diff_hooks(before, hooks_snapshot(model))
    if not gc.isenabled():
        problems.append("gc left off")
        gc.enable()
    if {m.training for m in model.modules()} != {True}:
        problems.append("train/eval modes changed")
    done = threading.Event()
    threading.Thread(target=lambda: (_user_call(model, x), done.set()), daemon=True).start()
    if not done.wait(5):
        problems.append("a plain call afterwards hangs")
    return tracer.lines, problems


@pytest.fixture
def user_global_hook() -> Iterator[None]:
    with global_hooks_restored():
        handle = torch_module.register_module_forward_pre_hook(lambda m, a: None)
        try:
            yield
        finally:
            handle.remove()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("user_global_hook")
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_ctrl_c_at_any_line_of_the_inspector_leaves_nothing_behind(entry: str) -> None:
    _interrupted_at(entry, None)  # warm caches
    total, problems = _interrupted_at(entry, None)
    assert not problems, f"uninterrupted: {problems[:5]}"
    assert total > 0
    step = max(1, total // 40)
    for nth in range(1, total + 1, step):
        with global_hooks_restored():
            _, problems = _interrupted_at(entry, nth)
        assert not problems, f"KeyboardInterrupt at inspector line {nth} of {total}: {problems[:5]}"


# -- the headless Debugger: a real SIGINT at every step of the caller's thread -----------------


class SigintAt:
    """A trace function for the caller's thread that sends the process a real SIGINT at the
    nth line or return it runs (every frame: the caller's, the inspector's, threading's).
    Python's signal handler then runs right there, as it would for a Ctrl+C arriving at that
    moment; a return is where an interrupt lands after a call came back. Lines where a real
    interrupt cannot land are skipped (see InterruptAtLine). Counts when nth is None."""

    def __init__(self, nth: int | None) -> None:
        self.nth, self.events = nth, 0
        self._last: dict[int, int] = {}

    def calls(self, frame: Any, event: str, arg: Any) -> Any:
        return self.step

    def step(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            last = self._last.get(id(frame), 0)
            self._last[id(frame)] = frame.f_lineno
            text = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            if (frame.f_lineno < last and text.startswith(("with ", "async with "))) or (
                text == "try:"
            ):
                return self.step
        elif event != "return":
            return self.step
        self.events += 1
        if self.events == self.nth:
            signal.raise_signal(signal.SIGINT)
        return self.step

    @contextlib.contextmanager
    def installed_here(self) -> Iterator[None]:
        """Traced in this thread only (the model thread runs untraced)."""
        old = sys.gettrace()
        sys.settrace(self.calls)
        try:
            yield
        finally:
            sys.settrace(old)


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The garbage of earlier tests collected, then no collection while the test runs: a
    collection at a random moment runs finalizers and weakref callbacks (torch's own caches)
    inside the traced code, where a SIGINT is swallowed by Python ("Exception ignored in
    ...") and the steps counted no longer line up with the run."""
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _continue(model: nn.Module, x: torch.Tensor) -> None:
    d = Debugger(model, x, stop_at_start=False, timeout=5)
    event = d.start()
    while not isinstance(event, Finished):
        event = d.cont()


def _steps(model: nn.Module, x: torch.Tensor) -> None:
    d = Debugger(model, x, timeout=5)
    event = d.start()
    while not isinstance(event, Finished):
        event = d.step()


def _model_threads(besides: Container[int | None] = ()) -> int:
    """Debugger model threads alive now, other than `besides` (idents; other tests' too)."""
    return sum(
        t.name == "inspector-model" and t.is_alive() and t.ident not in besides
        for t in threading.enumerate()
    )


def _model_thread_idents() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name == "inspector-model"}


def _sigint_at(
    run: Callable[[nn.Module, torch.Tensor], None], nth: int | None
) -> tuple[int, list[str]]:
    """`run` a Debugger with a SIGINT at its caller's nth line or return; returns (lines and
    returns counted, problems)."""
    torch.manual_seed(0)
    model, x = Blocks(fail=run is _continue), torch.randn(4, 8)
    for block in model.body:
        block.register_forward_hook(user_hook)
    before = hooks_snapshot(model)
    others = _model_thread_idents()
    tracer = SigintAt(nth)
    reached = False
    try:
        with _quiet(), tracer.installed_here():
            run(model, x)
    except KeyboardInterrupt:
        reached = True
    problems = []
    if nth is not None and tracer.events >= nth and not reached:
        problems.append("the interrupt never reached the caller")
    deadline = time.monotonic() + 5
    while (diff_hooks(before, hooks_snapshot(model)) or _model_threads(others)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.005)  # the model thread, released, takes its hooks off
    problems += diff_hooks(before, hooks_snapshot(model))
    if _model_threads(others):
        problems.append("the model thread still runs")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        problems.append("the inspector's SIGINT handler stayed")
    return tracer.events, problems


@pytest.fixture
def python_sigint_handler() -> Iterator[None]:
    """Python's own SIGINT handler, as a plain program has it (where the Debugger guards)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        return self.fc(x)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("python_sigint_handler")
def test_a_debugger_dropped_while_its_pass_runs_leaves_no_handler_behind() -> None:
    # A caller that gives up waiting (a timeout) drops a Debugger whose pass runs on: once
    # that pass has ended and another Debugger's has too, Python's handler is back.
    dropped = Debugger(_Slow(), torch.randn(2, 4), stop_at_start=False, timeout=0.01)
    with pytest.raises(TimeoutError):
        dropped.start()
    dropped.join(10)
    _continue(nn.Linear(4, 4), torch.randn(2, 4))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("user_global_hook", "python_sigint_handler", "collector_off")
@pytest.mark.parametrize("run", [_continue, _steps], ids=["continue", "steps"])
def test_sigint_at_any_step_of_the_debuggers_caller_ends_the_pass(
    run: Callable[[nn.Module, torch.Tensor], None],
) -> None:
    """Wherever the interrupt lands in the caller's thread (a Debugger method, threading's
    lock code under it, the caller's own code while the model thread is paused), the pass
    ends, its hooks come off, its model thread ends, the interrupt reaches the caller, and
    Python's handler is back."""
    _sigint_at(run, None)  # warm caches
    total, problems = _sigint_at(run, None)
    assert not problems, f"uninterrupted: {problems[:5]}"
    assert total > 0
    step = max(1, total // 400)
    for nth in range(1, total + 1, step):
        with global_hooks_restored():
            _, problems = _sigint_at(run, nth)
        assert not problems, f"SIGINT at the caller's step {nth} of {total}: {problems[:5]}"
