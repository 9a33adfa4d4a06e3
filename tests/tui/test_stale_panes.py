"""Panes say what is true now: an error unwinding, statistics not taken, the call picked."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import torch
from rich.console import Console
from textual.pilot import Pilot
from torch import nn

import inspector
from inspector.engine.control.stepper import Pause
from inspector.render.detail import CallDetail
from inspector.tui.detail import DetailPanel
from inspector.tui.factory import make_app
from tests.tui.support import FakeController, drive, wait_for


def _error_pause() -> Pause:
    """Paused at the failing Linear, its parent still running (the error on its way out)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(6, 2))
    t = inspector.trace(model, torch.randn(3, 4))
    calls = tuple(t.calls)
    root = dataclasses.replace(calls[0], status="running", outputs=None)
    return Pause(calls[3], "exit", "error", (root, *calls[1:]), 0, t.diagnosis)


def _detail_text(app: Any) -> str:
    panel = app.query_one(DetailPanel)
    return panel.plain(100)


def test_a_parent_of_the_failing_call_says_the_error_is_on_its_way_out() -> None:
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(_error_pause())
        await wait_for(pilot, lambda: app.pause is not None)
        assert app.view == "problems"
        await pilot.press("home")  # the root, still running
        await wait_for(pilot, lambda: app.selected == 0 and app.view == "detail")
        text = _detail_text(app)
        assert "an error raised inside this call is on its way out" in text
        assert "appears when the call returns" not in text

    drive(app, script)


def test_back_and_forward_from_the_error_box_show_the_call_they_pick() -> None:
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(_error_pause())
        await wait_for(pilot, lambda: app.pause is not None and app.view == "problems")
        await pilot.press("left")  # back: the ReLU before the failing Linear
        await wait_for(pilot, lambda: app.view == "detail" and app.selected == 2)
        assert _detail_text(app).startswith("1  ReLU")  # named by its path in the Sequential
        await pilot.press("right")
        await wait_for(pilot, lambda: app.selected == 3)
        assert "mat1 and mat2" in _detail_text(app)

    drive(app, script)


def _render(detail: CallDetail) -> str:
    console = Console(width=100, file=io.StringIO(), record=True, no_color=True)
    console.print(detail)
    return console.export_text()


def test_empty_statistics_cells_say_why() -> None:
    t = inspector.trace(nn.Linear(4, 2), torch.randn(3, 4), stats=False)
    text = _render(CallDetail(t.calls[0]))
    assert "no statistics for in[0], out: recorded with shapes only" in text
    measured = inspector.trace(nn.Linear(4, 2), torch.randn(3, 4))
    assert "no statistics" not in _render(CallDetail(measured.calls[0]))
    empty = inspector.trace(nn.Identity(), torch.zeros(0, 3))  # nothing to measure
    assert "no statistics" not in _render(CallDetail(empty.calls[0]))
