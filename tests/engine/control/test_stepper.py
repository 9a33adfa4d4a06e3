"""The stepper through its headless front end: pause order, each command, breakpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspector.engine.control.breakpoints import Breakpoint, condition_holds
from inspector.engine.control.debugger import Debugger, Finished
from inspector.engine.control.stepper import Pause
from inspector.engine.records import Call
from tests.broken_models import MakesNaN, NaNGradInFeat
from tests.helpers import global_hook_count as _global_hook_count
from tests.helpers import hook_count as _hook_count
from tests.models import ZOO

CASES = [c for c in ZOO.values() if c.name in (
    "mlp", "reused_modules", "nested_sequential", "resnet_blocks", "lstm", "tiny_gpt",
    "dict_output", "cnn_cross_entropy", "transformer_encoder",
)]  # fmt: skip


def expected_events(calls: list[Call]) -> list[tuple[str, int, str]]:
    """Enter/exit events of a pre-order call list, derived from the parent links."""
    children: dict[int | None, list[Call]] = {}
    for c in calls:
        children.setdefault(c.parent, []).append(c)
    events: list[tuple[str, int, str]] = []

    def visit(call: Call) -> None:
        events.append((call.path, call.index, "enter"))
        for child in children.get(call.seq, []):
            visit(child)
        events.append((call.path, call.index, "exit"))

    for root in children.get(None, []):
        visit(root)
    return events


def step_all(d: Debugger) -> list[tuple[str, int, str]]:
    seen = []
    event = d.start()
    while isinstance(event, Pause):
        seen.append((event.call.path, event.call.index, event.phase))
        event = d.step()
    assert isinstance(event, Finished)
    return seen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_step_into_pauses_follow_the_module_tree(case) -> None:  # type: ignore[no-untyped-def]
    model, args, kwargs = case.build()
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target()}
    d = Debugger(model, *args, **extra, **kwargs)
    seen = step_all(d)
    assert seen == expected_events(d.trace.calls)
    assert len(seen) == 2 * len(d.trace.calls)
    assert _hook_count(model) == 0 and _global_hook_count() == 0


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Sequential(nn.Linear(8, 8), nn.Tanh()),
        nn.Linear(8, 2),
    )  # fmt: skip


def test_step_over_runs_children_without_stopping() -> None:
    d = Debugger(_model(), torch.randn(3, 4))
    p = d.start()
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("", "enter")
    p = d.step()
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("0", "enter")
    p = d.next()  # over the whole first block
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("0", "exit")
    p = d.next()  # from an exit: the next event at this level
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("1", "enter")
    assert isinstance(d.cont(), Finished)


def test_step_out_runs_to_the_end_of_the_parent() -> None:
    d = Debugger(_model(), torch.randn(3, 4))
    d.start()
    d.step()
    p = d.step()
    assert isinstance(p, Pause) and p.call.path == "0.0"
    p = d.out()
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("0", "exit")
    p = d.out()
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("", "exit")
    assert isinstance(d.out(), Finished)


@pytest.mark.parametrize(
    ("breakpoint", "expected"),
    [
        (Breakpoint("1.*"), "1.0"),
        (Breakpoint("Tanh"), "1.1"),
        (Breakpoint("*", nth=1, condition=None), ""),
    ],
)
def test_continue_stops_at_breakpoints(breakpoint: Breakpoint, expected: str) -> None:
    d = Debugger(_model(), torch.randn(3, 4), breakpoints=[breakpoint], stop_at_start=False)
    p = d.start()
    assert isinstance(p, Pause) and p.call.path == expected and p.phase == "enter"
    assert p.reason.startswith("breakpoint")


def test_nth_call_of_a_reused_module() -> None:
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(2, 2), relu, nn.Linear(2, 2), relu)
    d = Debugger(model, torch.randn(1, 2), breakpoints=[Breakpoint("1", nth=2)],
                 stop_at_start=False)  # fmt: skip
    p = d.start()
    assert isinstance(p, Pause) and p.call.key == ("1", 1)


def test_run_to_a_glob() -> None:
    d = Debugger(_model(), torch.randn(3, 4))
    d.start()
    p = d.run_to("2")
    assert isinstance(p, Pause) and (p.call.path, p.phase) == ("2", "enter")


def test_nan_breakpoint_stops_where_the_nan_first_appears() -> None:
    torch.manual_seed(0)
    d = Debugger(MakesNaN(), torch.randn(8, 4), breakpoints=[Breakpoint(condition="nan")],
                 stop_at_start=False)  # fmt: skip
    p = d.start()
    assert isinstance(p, Pause) and p.phase == "exit" and p.call.path == "feat"
    assert p.reason == "breakpoint * if nan"


def test_a_nan_breakpoint_stops_once_a_pass_and_says_where_the_nan_was_made() -> None:
    torch.manual_seed(0)
    d = Debugger(MakesNaN(), torch.randn(8, 4), breakpoints=["* if nan"], stop_at_start=False)
    p = d.start()
    assert isinstance(p, Pause) and p.call.path == "feat"
    assert p.diagnosis is not None and "NaN" in p.diagnosis.summary
    assert p.diagnosis.module == ""  # made by the root's own torch.log, before feat
    assert isinstance(d.cont(), Finished)  # not again at every layer the NaN flows through


def test_an_error_mid_pass_stops_at_the_failing_module_with_its_diagnosis() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(6, 2))
    d = Debugger(model, torch.randn(3, 4), stop_at_start=False)
    p = d.start()
    assert isinstance(p, Pause) and p.reason == "error" and p.call.path == "2"
    assert p.diagnosis is not None and "nn.Linear(8, 2)" in p.diagnosis.fixes[0]
    end = d.cont()  # the root's exit is not a second stop for the same exception
    assert isinstance(end, Finished) and isinstance(end.trace.error, RuntimeError)
    assert end.trace.diagnosis is not None and end.trace.diagnosis.module == "2"


def test_quit_lets_the_pass_finish_unchanged() -> None:
    model = _model()
    x = torch.randn(3, 4)
    d = Debugger(model, x)
    d.start()
    d.step()
    end = d.quit()
    assert not end.aborted and torch.equal(end.trace.output, model(x))
    assert _hook_count(model) == 0


def test_abort_ends_the_pass_and_removes_hooks() -> None:
    model = _model()
    d = Debugger(model, torch.randn(3, 4))
    d.start()
    end = d.quit(abort=True)
    assert end.aborted and end.trace.output is None
    assert _hook_count(model) == 0


def test_restart_replays_with_the_same_rng_state() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    d = Debugger(model, torch.ones(2, 4))
    d.start()
    first = d.cont()
    assert isinstance(first, Finished)
    d.restart()
    second = d.cont()
    assert isinstance(second, Finished)
    assert torch.equal(first.trace.output, second.trace.output)


def test_unknown_condition_is_a_clear_error() -> None:
    call = Call(0, "", 0, "Linear", 0, None, ())
    with pytest.raises(ValueError, match="unknown breakpoint condition 'nans'"):
        condition_holds("nans", call, None)


def test_bad_breakpoints_are_refused_up_front() -> None:
    with pytest.raises(TypeError, match="path glob or a module type name"):
        Breakpoint(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nth counts calls from 1"):
        Breakpoint("fc1", nth=0)
    with pytest.raises(ValueError, match="unknown breakpoint condition 'nans'"):
        Breakpoint(condition="nans")


def test_commands_need_a_pause() -> None:
    d = Debugger(_model(), torch.randn(3, 4), stop_at_start=False)
    assert isinstance(d.start(), Finished)
    with pytest.raises(RuntimeError, match="not paused"):
        d.step()


def _classifier() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, torch.randn(2, 4), torch.tensor([0, 2])


def test_stepping_goes_on_through_the_backward_pass_in_reverse() -> None:
    model, x, y = _classifier()
    d = Debugger(model, x, loss_fn=nn.CrossEntropyLoss(), target=y, backward=True)
    event = d.start()
    backward = []
    while isinstance(event, Pause):
        if event.phase == "backward":
            backward.append(event.call.name)
            assert event.call.grad is not None and event.call.grad.output is not None
            assert event.where.startswith("in the backward of ")
        event = d.step()
    assert backward == ["loss_fn", "(root)", "2", "1", "0"]
    assert all(c.grad is not None for c in event.trace.calls)
    assert all(not p._backward_hooks for p in model.parameters())


def test_gradient_breakpoints_stop_in_the_backward_pass() -> None:
    torch.manual_seed(0)
    model = NaNGradInFeat()
    with torch.no_grad():
        model.pre.weight.zero_()
        model.pre.bias.zero_()
    d = Debugger(
        model, torch.randn(4, 4), loss_fn=nn.CrossEntropyLoss(), target=torch.tensor([0, 1, 2, 0]),
        backward=True, stop_at_start=False, breakpoints=[Breakpoint(condition="grad-nan")],
    )  # fmt: skip
    event = d.start()
    assert isinstance(event, Pause) and event.phase == "backward"
    assert event.call.path == "pre" and event.reason == "breakpoint * if grad-nan"
    assert not all(s is None or s.finite for s in event.call.grad.outputs)  # type: ignore[union-attr]
    finished = d.quit(abort=True)
    assert finished.aborted and _hook_count(model) == 0
    assert all(not p._backward_hooks for p in model.parameters())


def test_grad_norm_breakpoint_sees_parameter_gradients() -> None:
    model, x, y = _classifier()
    d = Debugger(
        model, x, loss_fn=nn.CrossEntropyLoss(), target=y, backward=True, stop_at_start=False,
        breakpoints=[Breakpoint("0", condition="grad-norm>0")],
    )  # fmt: skip
    event = d.start()
    assert isinstance(event, Pause) and event.call.path == "0" and event.phase == "backward"
    assert event.call.grad is not None and event.call.grad.params
    assert isinstance(d.cont(), Finished)


def test_backward_without_a_scalar_ends_the_pass_with_the_reason() -> None:
    model, x, _ = _classifier()
    d = Debugger(model, x, backward=True, stop_at_start=False)
    event = d.start()
    assert isinstance(event, Finished) and isinstance(event.trace.error, ValueError)
    assert "give loss_fn and target" in str(event.trace.error)


@pytest.mark.parametrize("condition", ["grad-norm>x", "grad", "absmax>"])
def test_bad_gradient_conditions_are_refused(condition: str) -> None:
    with pytest.raises(ValueError, match="unknown breakpoint condition"):
        Breakpoint(condition=condition)


def test_dead_and_saturated_breakpoints() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8), nn.Sigmoid())
    with torch.no_grad():
        model[0].bias[:16] = -100.0
        model[2].weight.mul_(500.0)
    x = torch.randn(16, 8)
    d = Debugger(model, x, stop_at_start=False, breakpoints=[Breakpoint(condition="dead")])
    event = d.start()
    assert isinstance(event, Pause) and event.call.path == "1" and event.phase == "exit"
    assert event.call.units is not None and len(event.call.units.dead) == 16
    d.quit()
    d = Debugger(model, x, stop_at_start=False, breakpoints=[Breakpoint(condition="saturated")])
    event = d.start()
    assert isinstance(event, Pause) and event.call.path == "3"
    d.quit()


def test_scale_breakpoint_stops_at_the_layer_that_blows_the_scale_up() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight.mul_(100.0)
    d = Debugger(model, torch.randn(4, 8), stop_at_start=False,
                 breakpoints=[Breakpoint(condition="scale")])  # fmt: skip
    event = d.start()
    assert isinstance(event, Pause) and event.call.path == "2"
    assert isinstance(d.cont(), Finished)
