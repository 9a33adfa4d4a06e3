"""Sessions over many passes, and the entry points without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.session import Session
from inspector.engine.control.stepper import Pause
from tests.helpers import global_hook_count as _global_hook_count
from tests.helpers import hook_count as _hook_count

ROOT = Path(__file__).resolve().parents[3]


class Continue:
    """A front end that records each pause and lets the model go on."""

    def __init__(self) -> None:
        self.pauses: list[Pause] = []
        self.session: Session | None = None

    def __call__(self, pause: Pause) -> None:
        self.pauses.append(pause)
        assert self.session is not None
        self.session.stepper.command("continue")


def _loop(model: nn.Module, steps: int) -> None:
    criterion = nn.MSELoss()
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    for _ in range(steps):
        criterion(model(x), y)


def test_breakpoint_hits_once_per_pass_and_passes_are_counted() -> None:
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    front = Continue()
    with Session(front, break_on="2") as session:
        front.session = session
        _loop(model, 3)
        assert session.passes == 3
    assert [(p.call.path, p.pass_index) for p in front.pauses] == [("model.2", i) for i in range(3)]
    assert _global_hook_count() == 0


def test_on_pass_stops_at_the_start_of_that_pass_only() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    front = Continue()
    session = Session(front, model, on_pass=2)
    front.session = session
    _loop(model, 4)
    session.detach()
    assert [(p.call.path, p.pass_index, p.reason) for p in front.pauses] == [("", 1, "pass 2")]
    assert _hook_count(model) == 0


def test_a_session_records_only_the_current_pass() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    front = Continue()
    with Session(front, model) as session:
        front.session = session
        _loop(model, 5)
        assert [c.path for c in session.calls] == ["", "0", "1"]
        assert session.passes == 5


def test_a_module_changed_between_passes_is_described_anew() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    front = Continue()
    x = torch.randn(4, 3)
    with Session(front, model) as session:
        front.session = session
        model(x)
        assert session.calls[1].module_repr.endswith("bias=True)")
        assert [c.params for c in session.calls[:2]] == [8, 8]
        model[0].bias = None
        model(x)
        assert session.calls[1].module_repr.endswith("bias=False)")
        assert [c.params for c in session.calls[:2]] == [6, 6]


def test_attach_without_a_terminal_logs_and_never_waits(capfd) -> None:  # type: ignore[no-untyped-def]
    model = nn.Sequential(nn.Linear(3, 2))
    with inspector.attach(model, break_on="0") as session:
        _loop(model, 2)
    assert not session.attached
    err = capfd.readouterr().err
    assert err.count("breakpoint 0: before 0 (Linear)") == 2


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)  # fmt: skip


def test_debug_without_a_terminal_prints_the_report_and_returns() -> None:
    out = _python(
        "import torch, inspector\n"
        "m = torch.nn.Sequential(torch.nn.Linear(3, 2))\n"
        "y = inspector.debug(m, torch.ones(1, 3))\n"
        "print('returned', tuple(y.shape))\n"
    )
    assert out.returncode == 0, out.stderr
    assert "Sequential · 2 calls" in out.stdout and "returned (1, 2)" in out.stdout


def test_debug_without_a_terminal_re_raises_the_original_exception() -> None:
    out = _python(
        "import torch, inspector\n"
        "m = torch.nn.Sequential(torch.nn.Linear(3, 2))\n"
        "try:\n"
        "    inspector.debug(m, torch.ones(1, 4))\n"
        "except RuntimeError as e:\n"
        "    print('raised', type(e).__name__, 'mat1 and mat2' in str(e))\n"
    )
    assert out.returncode == 0, out.stderr
    assert "raised RuntimeError True" in out.stdout
    assert "nn.Linear(4, 2)" in out.stdout  # the report explained it first


def test_set_trace_without_a_terminal_does_not_block() -> None:
    out = _python(
        "import torch, inspector\n"
        "m = torch.nn.Linear(3, 2)\n"
        "inspector.set_trace()\n"
        "print('ran', tuple(m(torch.ones(1, 3)).shape))\n"
    )
    assert out.returncode == 0, out.stderr
    assert "ran (1, 2)" in out.stdout


def test_a_session_records_each_training_steps_gradients_and_stops_on_them() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.MSELoss()
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    front = Continue()
    seen: list[tuple[int, bool]] = []
    bp = Breakpoint("2", condition="grad-norm>0")
    with Session(front, model, break_on=bp, gradients=True) as session:
        front.session = session
        for _ in range(3):
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append((session.passes, all(c.grad is not None for c in session.calls)))
    assert seen == [(1, True), (2, True), (3, True)]
    assert [(p.call.path, p.phase, p.pass_index) for p in front.pauses] == [
        ("2", "backward", i) for i in range(3)
    ]
    assert _hook_count(model) == 0 and all(not p._backward_hooks for p in model.parameters())


def test_running_free_records_shapes_and_a_pause_gets_its_statistics() -> None:
    from inspector.engine.records import first_tensor

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2), nn.Tanh())
    seen: list[Pause] = []
    live: list[Session] = []

    def front(pause: Pause) -> None:
        seen.append(pause)
        live[0].stepper.command("into" if len(seen) == 1 else "continue")

    with Session(front, model, break_on="2") as session:
        live.append(session)
        model(torch.randn(4, 3))
        calls = list(session.calls)
    at_break, stepped = seen[0], seen[1]
    assert at_break.call.path == "2" and at_break.phase == "enter"
    x = first_tensor(at_break.call.inputs)
    assert x is not None and x.stats is not None  # computed at the pause, from live values
    assert first_tensor(calls[1].outputs).stats is None  # type: ignore[union-attr]  # ran free
    assert stepped.call.path == "2" and stepped.phase == "exit"
    assert first_tensor(stepped.call.outputs).stats is not None  # type: ignore[union-attr]
    # a condition that reads statistics gets them at every call
    hits: list[Pause] = []

    def watch(pause: Pause) -> None:
        hits.append(pause)
        live[-1].stepper.command("continue")

    with Session(watch, model, break_on=Breakpoint(condition="absmax>0.001")) as session:
        live.append(session)
        model(torch.randn(4, 3))
        assert all(first_tensor(c.outputs).stats is not None for c in session.calls)  # type: ignore[union-attr]
    assert hits[0].call.path == "0" and hits[0].phase == "exit"


def test_detach_lets_go_of_kept_values() -> None:
    from inspector.engine.capture.values import ValueStore

    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    front = Continue()
    session = Session(front, model)
    front.session = session
    session.recorder.values = ValueStore()
    model(torch.randn(4, 3))
    assert session.recorder.values.bytes > 0
    session.detach()
    assert session.recorder.values.bytes == 0 and _hook_count(model) == 0


def test_debug_inside_a_session_runs_the_model_there_not_in_a_second_debugger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch.manual_seed(0)
    model, x = nn.Linear(3, 2), torch.randn(4, 3)
    expected = model(x)
    with inspector.attach() as session:  # every module call hooked, as under `run`
        out = inspector.debug(model, x)
        assert session.passes == 1  # the open session recorded the call
    assert torch.equal(out, expected)
    assert capsys.readouterr().out == ""  # no report of its own
