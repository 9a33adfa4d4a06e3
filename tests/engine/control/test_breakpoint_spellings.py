"""Every breakpoint condition stops at the same calls however it is given: a Breakpoint
object, a string to the Debugger, a string to attach(), or `run --break` (the script runner)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.control.breakpoints import Breakpoint, as_breakpoint, parse_breakpoint
from inspector.engine.control.debugger import Debugger, Finished
from inspector.engine.control.script import ScriptFinished, ScriptRun
from inspector.engine.control.session import Session
from inspector.engine.control.stepper import Pause


class Trips(nn.Module):
    """Each layer trips one condition: scaled up, NaN, Inf, dead, saturated, batch changed."""

    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.sig = nn.Sigmoid()
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.big.weight.copy_(torch.eye(4) * 100)
            self.big.bias.zero_()
            self.head.weight.fill_(0.5)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor, poison: str = "", scalar: bool = False) -> torch.Tensor:
        h = self.big(x)  # absmax > 50, scale x100
        dead = self.relu(-h.abs())  # every unit zero
        s = self.sig(h.abs() + 50)  # every unit saturated
        out = self.head(h + dead + s)
        if poison == "nan":
            out = out * torch.tensor(float("nan"))
        if poison == "inf":
            out = out * torch.tensor(float("inf"))
        if poison == "batch":
            out = out.reshape(1, -1)  # the samples folded into one
        return out.sum() if scalar else out


CASES = [
    # (condition text, poison, backward)
    ("absmax>50", "", False),
    ("scale", "", False),
    ("dead", "", False),
    ("saturated", "", False),
    ("batch", "batch", False),
    ("nan", "nan", False),
    ("inf", "inf", False),
    ("grad-nan", "nan", True),
    ("grad-norm>1", "", True),
]


def _inputs() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(3, 4).abs() + 0.5


def _debugger(spec: Breakpoint | str, poison: str, backward: bool) -> list[tuple[str, str]]:
    model = Trips()
    d = Debugger(model, _inputs(), poison=poison, scalar=backward, breakpoints=[spec],
                 stop_at_start=False, backward=backward, timeout=20)  # fmt: skip
    stops: list[tuple[str, str]] = []
    event = d.start()
    while not isinstance(event, Finished):
        assert isinstance(event, Pause)
        stops.append((event.call.path, event.phase))
        event = d.cont()
    return stops


def _session(spec: str, poison: str, backward: bool) -> list[tuple[str, str]]:
    model = Trips()
    stops: list[tuple[str, str]] = []
    holder: list[Session] = []

    def front(pause: Pause) -> None:
        stops.append((pause.call.path, pause.phase))
        holder[0].stepper.command("continue")

    with Session(front, model, break_on=spec, gradients=backward) as session:
        holder.append(session)
        out = model(_inputs(), poison=poison, scalar=backward)
        if backward:
            out.backward()
    return stops


SCRIPT = """
import sys
import torch
from tests.engine.control.test_breakpoint_spellings import Trips, _inputs
model = Trips()
out = model(_inputs(), poison=sys.argv[1], scalar=sys.argv[2] == "1")
if sys.argv[2] == "1":
    out.backward()
"""


def _run_break(spec: str, poison: str, backward: bool, tmp_path: Path) -> list[tuple[str, str]]:
    script = tmp_path / "trips.py"
    script.write_text(SCRIPT)
    stops: list[tuple[str, str]] = []
    done = threading.Event()
    holder: list[ScriptRun] = []

    def on_event(event: Pause | ScriptFinished) -> None:
        if isinstance(event, ScriptFinished):
            done.set()
            return
        # the script names its root after its variable: strip it to compare paths
        path = event.call.path.removeprefix("model").removeprefix(".")
        stops.append((path, event.phase))
        holder[0].stepper.command("continue")

    run = ScriptRun(str(script), [poison, "1" if backward else "0"], breakpoints=[spec],
                    gradients=backward, on_event=on_event)  # fmt: skip
    holder.append(run)
    import sys

    root = str(Path(__file__).resolve().parents[3])
    sys.path.insert(0, root)
    try:
        run.start()
        assert done.wait(60), "the script did not finish"
    finally:
        sys.path.remove(root)
    return stops


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("condition", "poison", "backward"), CASES)
def test_every_spelling_of_a_condition_stops_at_the_same_calls(
    condition: str, poison: str, backward: bool, tmp_path: Path
) -> None:
    text = f"* if {condition}"
    expected = _debugger(Breakpoint(condition=condition), poison, backward)
    assert expected, f"{condition}: the model was built to trip it, nothing stopped"
    assert _debugger(text, poison, backward) == expected
    assert _session(text, poison, backward) == expected
    assert _run_break(text, poison, backward, tmp_path) == expected


def test_a_call_number_and_a_pattern_in_a_string_are_kept() -> None:
    assert as_breakpoint("fc1 #2") == Breakpoint("fc1", nth=2)
    assert as_breakpoint("decoder.* if nan") == Breakpoint("decoder.*", condition="nan")
    assert parse_breakpoint("head") == as_breakpoint("head")


def test_an_unknown_condition_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="absmax>N"):
        as_breakpoint("* if weird")
    with pytest.raises(ValueError, match="absmax>N"):
        inspector.attach(nn.Linear(2, 2), break_on="* if weird")


def test_breakpoint_is_public() -> None:
    assert inspector.Breakpoint is Breakpoint
