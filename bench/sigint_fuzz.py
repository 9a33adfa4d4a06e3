"""Ctrl+C at random moments under every entry point: nothing of the inspector's may stay behind.

Each attempt builds a small model with the user's own hooks (a forward hook on every block and
a global forward pre-hook), starts an entry point, and a real SIGINT arrives after a random
delay within that entry point's usual duration. Afterwards the model's hooks and the global
hook dicts must be exactly as before, gc on, train/eval modes as they were, a plain call of
the model must finish, the Debugger's model thread must have ended and Python's own SIGINT
handler must be back. Prints the counts, and each interrupt that never reached the caller
(swallowed); exits 1 when anything was left behind.

    python bench/sigint_fuzz.py [--interrupts 1000] [--seed 0] [--entry trace]

tests/engine/test_sigint_fuzz.py runs a few dozen of these in CI.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import io
import os
import random
import signal
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inspector
from inspector.engine.control.debugger import Debugger, Finished
from tests.helpers import diff_hooks, global_hooks_restored, hooks_snapshot


class Model(nn.Module):
    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[nn.Sequential(nn.Linear(32, 32), nn.Tanh()) for _ in range(10)]
        )
        self.head = nn.Linear(32, 4)
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        if self.fail:
            h = h.view(-1, 7)  # 32 features are not a multiple of 7
        return self.head(h)


def user_hook(module: nn.Module, args: Any, output: Any) -> None:
    return None


USER_GLOBAL_CALLS = [0]


def user_global_hook(module: nn.Module, args: Any) -> None:
    USER_GLOBAL_CALLS[0] += 1


def build(fail: bool) -> tuple[Model, torch.Tensor]:
    model = Model(fail)
    for block in model.blocks:
        block.register_forward_hook(user_hook)
    return model, torch.randn(8, 32)


def _user_call(model: nn.Module, x: torch.Tensor) -> None:
    with contextlib.suppress(RuntimeError):
        model(x)


def _debugger(model: nn.Module, x: torch.Tensor) -> None:
    d = Debugger(model, x, stop_at_start=False, timeout=5)
    event = d.start()
    for _ in range(50):
        if isinstance(event, Finished):
            return
        event = d.cont()


def _debugger_steps(model: nn.Module, x: torch.Tensor) -> None:
    """Step through every call: the caller's own code runs between many pauses."""
    d = Debugger(model, x, timeout=5)
    event = d.start()
    for _ in range(200):
        if isinstance(event, Finished):
            return
        event = d.step()


def _within(make: Callable[[nn.Module], Any]) -> Callable[[nn.Module, torch.Tensor], None]:
    def run(model: nn.Module, x: torch.Tensor) -> None:
        with make(model):
            _user_call(model, x)

    return run


def _set_trace(model: nn.Module, x: torch.Tensor) -> None:
    inspector.set_trace()
    _user_call(model, x)


# name -> (fails?, run)
ENTRY_POINTS: dict[str, tuple[bool, Callable[[nn.Module, torch.Tensor], Any]]] = {
    "trace": (False, lambda m, x: inspector.trace(m, x)),
    "trace_failing": (True, lambda m, x: inspector.trace(m, x)),
    "diagnose": (True, lambda m, x: inspector.diagnose(m, x)),
    "check": (True, lambda m, x: inspector.check(m, x)),
    "explain": (True, _within(lambda m: inspector.explain())),
    "explain_model": (True, _within(inspector.explain)),
    "attach_model": (True, _within(inspector.attach)),
    "attach_global": (False, _within(lambda m: inspector.attach())),
    "set_trace": (False, _set_trace),
    "Debugger": (True, _debugger),
    "Debugger_steps": (False, _debugger_steps),
    "contributions": (False, lambda m, x: inspector.contributions(m, x, layer="head")),
    "report": (False, lambda m, x: inspector.report(m, x)),
}


class Alarm:
    """SIGALRM after a delay; its handler sends the process a real SIGINT (a Ctrl+C)."""

    def __init__(self) -> None:
        self.fired = False
        signal.signal(signal.SIGALRM, self._ring)

    def _ring(self, signum: int, frame: Any) -> None:
        self.fired = True
        os.kill(os.getpid(), signal.SIGINT)

    def arm(self, delay: float) -> None:
        self.fired = False
        signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _drain() -> None:
    """Let a SIGINT already delivered raise here, inside the attempt's handler."""
    for _ in range(1000):
        pass
    time.sleep(0.001)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        yield


_STUCK: set[int] = set()  # model threads already reported as left running
_HUNG: list[threading.Thread] = []  # plain calls that never finished: kept, never freed here


def _finishes(model: nn.Module, x: torch.Tensor, seconds: float = 5.0) -> bool:
    done = threading.Event()

    def call() -> None:
        with contextlib.suppress(Exception):
            model(x)
        done.set()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    if not done.wait(seconds):
        _HUNG.append(thread)
        return False
    # Joined and dropped here, between attempts: a Thread object freed in this thread runs
    # threading._dangling's weakref callback, where a SIGINT is printed and lost (swallowed).
    thread.join()
    return True


def durations(rounds: int = 3) -> dict[str, float]:
    """Each entry point's usual uninterrupted duration (median of a few warm runs)."""
    out = {}
    for name, (fails, run) in ENTRY_POINTS.items():
        times = []
        for _ in range(rounds):
            model, x = build(fails)
            started = time.perf_counter()
            with global_hooks_restored(), _quiet(), contextlib.suppress(Exception):
                run(model, x)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)
    return out


def _model_threads_left() -> int:
    """Debugger model threads still alive that no earlier attempt reported."""
    alive = {
        t.ident
        for t in threading.enumerate()
        if t.name == "inspector-model" and t.is_alive() and t.ident is not None
    }
    new = alive - _STUCK
    _STUCK.update(new)
    return len(new)


def attempt(name: str, delay: float, alarm: Alarm) -> tuple[bool, list[str]]:
    """One run with a SIGINT after `delay` (unless it ends first); returns (the interrupt
    reached the caller, what was left behind)."""
    fails, run = ENTRY_POINTS[name]
    model, x = build(fails)
    before = hooks_snapshot(model)
    modes = [m.training for m in model.modules()]
    interrupted = False
    with _quiet():
        try:
            try:
                alarm.arm(delay)
                run(model, x)
            finally:
                alarm.disarm()
            _drain()
        except KeyboardInterrupt:
            interrupted = True
        except Exception:
            pass  # the model's own error, re-raised by some entry points
    left: list[str] = []
    deadline = time.monotonic() + (2.0 if name.startswith("Debugger") else 0.0)
    while True:  # an interrupted Debugger caller: give its worker a moment to let go
        changes = diff_hooks(before, hooks_snapshot(model))
        alive = any(
            t.name == "inspector-model" and t.is_alive() and t.ident not in _STUCK
            for t in threading.enumerate()
        )
        if (not changes and not alive) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    user_hooks = sum(h is user_hook for b in model.blocks for h in b._forward_hooks.values())
    if user_hooks != len(model.blocks):
        left.append(f"user hooks lost: {len(model.blocks) - user_hooks}")
    if changes:
        left.append(f"hooks left: {len(changes)} hook dicts changed")
    if not gc.isenabled():
        left.append("gc left off")
        gc.enable()
    if [m.training for m in model.modules()] != modes:
        left.append("train/eval modes changed")
    if not _finishes(model, x):
        left.append("a plain call afterwards hangs")
    stuck = _model_threads_left()
    if stuck:
        left.append(f"model threads left: {stuck}")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        left.append("SIGINT handler left")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return interrupted, left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interrupts", type=int, default=1000, help="SIGINTs to land")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--entry", action="append", help="only these entry points")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    names = args.entry or list(ENTRY_POINTS)
    handle = torch_module.register_module_forward_pre_hook(user_global_hook)
    alarm = Alarm()
    usual = durations()
    counts: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in names}
    problems: collections.Counter[str] = collections.Counter()
    started = time.perf_counter()
    try:
        i = 0
        landed = 0
        while landed < args.interrupts and i < 4 * args.interrupts:
            name = names[i % len(names)]
            delay = rng.uniform(0.0, usual[name])
            with global_hooks_restored():  # a leak must not spoil the attempts after it
                interrupted, left = attempt(name, delay, alarm)
            c = counts[name]
            c["attempts"] += 1
            c["landed"] += alarm.fired
            c["reached caller"] += interrupted
            c["swallowed"] += alarm.fired and not interrupted
            c["left something"] += bool(left)
            landed += alarm.fired
            i += 1
            if alarm.fired and not interrupted:
                print(f"attempt {i} ({name}, SIGINT after {delay * 1e3:.1f} ms): swallowed")
            for what in left:
                problems[what.split(":")[0]] += 1
                print(f"attempt {i} ({name}, SIGINT after {delay * 1e3:.1f} ms): {what}")
    finally:
        handle.remove()
    total = sum((c for c in counts.values()), collections.Counter())
    print(
        f"sigint fuzz: {total['attempts']} attempts, {total['landed']} interrupts landed, "
        f"{total['reached caller']} reached the caller, {total['swallowed']} swallowed, "
        f"{time.perf_counter() - started:.1f} s"
    )
    for name in names:
        c = counts[name]
        print(
            f"  {name:14s} usual {usual[name] * 1e3:6.1f} ms  attempts {c['attempts']:4d}  "
            f"landed {c['landed']:4d}  reached {c['reached caller']:4d}  "
            f"left something {c['left something']:3d}"
        )
    print(f"leaked hooks: {problems['hooks left']}")
    print(f"user hooks lost: {problems['user hooks lost']}")
    print(f"gc left off: {problems['gc left off']}")
    print(f"modes changed: {problems['train/eval modes changed']}")
    print(f"hung afterwards: {problems['a plain call afterwards hangs']}")
    print(f"model threads left: {problems['model threads left']}")
    print(f"SIGINT handler left: {problems['SIGINT handler left']}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
