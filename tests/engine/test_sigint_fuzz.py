"""Ctrl+C at any moment leaves nothing of the inspector's behind.

Two ways to land the interrupt: real SIGINTs at random moments (bench/sigint_fuzz.py, a few
dozen of them here, in a subprocess with a hard timeout so a hang fails instead of hanging the
run), and a KeyboardInterrupt raised at a chosen line of the inspector's own code, swept over
the whole run of each entry point (deterministic: a failure names the line count to replay).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

import inspector
from tests.helpers import (
    InterruptAtLine,
    diff_hooks,
    global_hooks_restored,
    hooks_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_real_sigints_at_random_moments_leave_nothing_behind() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench.sigint_fuzz", "--interrupts", "60", "--seed", "0"],
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
    for line in ("leaked hooks: 0", "user hooks lost: 0", "gc left off: 0", "hung afterwards: 0"):
        assert line in summary, f"{line!r} expected:\n{out[-3000:]}"
    assert run.returncode == 0, out[-3000:]


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
