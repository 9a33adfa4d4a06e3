"""The app's state in reactives pushed down to widgets; the one-way boundary with the program
(breakpoints as commands, values only, slow work in worker threads); the frontends."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher
from torch import nn

import inspector
from inspector.engine.capture.values import HeatMap
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.script import ScriptFinished
from inspector.engine.records import Call, TensorInfo
from inspector.render import ContributionBars
from inspector.tui.calltree import CallTree
from inspector.tui.contrib import ContribPanel
from inspector.tui.controller import EventRelay, Progress
from inspector.tui.detail import COMPUTING_HEAT, DetailPanel
from inspector.tui.factory import make_app
from inspector.tui.messages import PassEnd
from inspector.tui.terminal import SCRIPT, SESSION
from tests.tui.support import (
    FakeController,
    debugger_app,
    drive,
    drive_debugger,
    mlp_trace,
    pause_at,
    row_text,
    status,
    wait_for,
)


def test_state_set_on_the_app_reaches_the_widgets() -> None:
    t = mlp_trace()
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 3, "exit"))
        await wait_for(pilot, lambda: app.pause is not None)
        tree, detail = app.query_one(CallTree), app.query_one(DetailPanel)
        assert detail.view is not None and detail.view.call.seq == 3
        app.selected = 1
        assert tree.selected_seq == 1 and detail.view.call.seq == 1
        app.view = "problems"
        assert app.query_one(ContentSwitcher).current == "problems"
        app.status = ("look here", "bold")
        assert status(app) == "look here"
        app.breakpoints = (Breakpoint("0"),)
        assert "0" in tree.breakpoints

    drive(app, script)


def test_breakpoints_reach_the_stepper_as_a_new_list() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    app, debugger = debugger_app(model, torch.randn(3, 4), breakpoints=["2"])

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        given = debugger.stepper.breakpoints
        app.selected = 0
        await pilot.press("b")  # a breakpoint on the root
        assert [b.pattern for b in given] == ["2"]  # the list the model thread read: untouched
        assert [b.pattern for b in debugger.stepper.breakpoints] == ["2", ""]
        await pilot.press("B")  # the list: switch "2" off
        await pilot.press("space", "escape")
        await wait_for(pilot, lambda: not debugger.stepper.breakpoints[0].enabled)
        assert given[0].enabled
        await pilot.press("c")  # nothing stops it now but the end
        await wait_for(pilot, lambda: app.finished is not None)
        await pilot.press("q")

    drive_debugger(app, debugger, script)


class SlowValues(FakeController):
    """Heat maps and contributions that wait for the test, and say which thread made them."""

    explains = True

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.threads: list[int] = []

    def heatmap(
        self, calls: Sequence[Call], call: Call, info: TensorInfo, output_position: int | None,
        index: int, label: str, size: tuple[int, int] = (24, 64),
    ) -> HeatMap | str:  # fmt: skip
        self.threads.append(threading.get_ident())
        self.go.wait(10)
        return f"made for {label}"

    def contributions(
        self, layer: str, call_index: int, method: str, progress: Progress, target: int | None
    ) -> ContributionBars | str:
        self.threads.append(threading.get_ident())
        progress(1, 2)
        self.go.wait(10)
        return ContributionBars(f"{layer} explained", [(0, 1.0, 1.0)])


def test_heat_maps_and_contributions_are_made_off_the_ui_thread_with_progress() -> None:
    t = mlp_trace()
    controller = SlowValues()
    app = make_app(controller)
    ui = threading.get_ident()

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 1, "exit"))
        await wait_for(pilot, lambda: app.pause is not None)
        detail = app.query_one(DetailPanel)
        await pilot.press("m")  # the heat map: computing, then made
        await wait_for(pilot, lambda: COMPUTING_HEAT in detail.plain())
        controller.go.set()
        await wait_for(pilot, lambda: "made for 0 out" in detail.plain())
        controller.go.clear()
        app.post_event(finished(t))
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1
        panel = app.query_one(ContribPanel)
        await pilot.press("x")  # contributions: progress, then the bars
        await wait_for(pilot, lambda: "grad_x_act: step 1 of 2" in panel.plain())
        controller.go.set()
        await wait_for(pilot, lambda: "0 explained" in panel.plain())

    drive(app, script)
    assert len(controller.threads) == 2 and ui not in controller.threads


def finished(t: Any) -> Any:
    from inspector.engine.control.debugger import Finished

    return Finished(t)


def test_the_end_of_a_pass_crosses_as_values() -> None:
    t = mlp_trace()
    end = PassEnd.of(finished(t))
    assert end.calls == tuple(t.calls) and end.error is None and not end.aborted
    assert not hasattr(end, "output") and not hasattr(end, "trace")


def test_run_frontend_closes_when_the_script_ends_with_nothing_to_show() -> None:
    app = make_app(FakeController(), frontend=SCRIPT)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(ScriptFinished(0))
        await wait_for(pilot, lambda: not app.is_running)

    drive(app, script)


def test_run_frontend_continue_waits_for_the_next_stop() -> None:
    t = mlp_trace()

    class StopsAgain(FakeController):
        """The program stops again a moment after it is told to continue (a timer started
        before the key raced it on a loaded machine: the stop came first, `c` passed it)."""

        def command(self, kind: str, arg: str = "") -> None:
            super().command(kind, arg)
            if kind == "continue":
                threading.Timer(0.3, app.post_event, (pause_at(t, 2),)).start()

    controller = StopsAgain()
    app = make_app(controller, frontend=SCRIPT)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 0))
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")  # headless: nothing to suspend, the app waits for the stop
        assert controller.commands == [("continue", "")]
        await wait_for(pilot, lambda: app.pause is not None and app.pause.call.seq == 2)
        assert app.is_running

    drive(app, script)


def test_session_frontend_detaches_on_continue_with_no_stop_ahead() -> None:
    t = mlp_trace()

    class NothingAhead(FakeController):
        def stops_ahead(self) -> bool:
            return False

    controller = NothingAhead()
    app = make_app(controller, frontend=SESSION)
    app.driver_class = make_app().driver_class  # headless in a test: run_test's own driver

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 0))
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")  # as pdb: nothing left to stop at, so detach
        await wait_for(pilot, lambda: not app.is_running)
        assert controller.commands == []

    drive(app, script)


def test_the_relay_holds_events_until_the_app_is_up_then_keeps_their_order() -> None:
    t = mlp_trace()
    relay = EventRelay()
    got: list[object] = []
    first, second = pause_at(t, 0), pause_at(t, 1)
    relay(first)
    assert relay.first() is first and got == []
    relay.connect(got.append)
    relay(second)
    assert got == [first, second]


def test_run_script_end_names_a_breakpoint_that_matched_no_module(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inspector.engine.control.breakpoints import parse_breakpoint
    from inspector.tui.script import _report_end

    calls = tuple(mlp_trace().calls)  # paths "", "0", "1", "2"
    breaks = [parse_breakpoint(b) for b in ("fc9", "Linear", "2 if nan", "* if nan")]
    assert _report_end(ScriptFinished(0, calls=calls, passes=1), breaks) == 0
    assert capsys.readouterr().err == "torch-inspector: breakpoint 'fc9' matched no module\n"
    _report_end(ScriptFinished(130, calls=calls, passes=1, quit=True), breaks)  # q: no verdict
    assert "matched no module" not in capsys.readouterr().err


def test_a_tree_row_cut_at_the_edge_ends_in_an_ellipsis() -> None:
    from collections import OrderedDict

    torch.manual_seed(0)
    layers = OrderedDict(a_rather_long_layer_name=nn.Linear(4, 8), relu=nn.ReLU())
    t = inspector.trace(nn.Sequential(layers), torch.randn(3, 4))
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 2, "exit"))
        await wait_for(pilot, lambda: app.pause is not None)
        tree = app.query_one(CallTree)
        width = tree.size.width
        for y in range(3):
            seq = tree.rows[y]
            shown = "".join(s.text for s in tree.render_line(y)).rstrip()
            full = row_text(tree, seq).rstrip()
            if len(full) > width:
                assert shown.endswith("…") and len(shown) == width, shown
            else:
                assert shown == full
        assert any(len(row_text(tree, s)) > width for s in tree.rows)  # one row was cut

    drive(app, script, size=(80, 24))


def test_an_output_index_past_the_models_outputs_is_refused_with_a_reason() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10))
    app, debugger = debugger_app(model, torch.randn(2, 4))
    said: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kw: (said.append(str(message)), notify(message, **kw))[-1]  # type: ignore[method-assign]

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1
        await pilot.press("o", "4", "2", "enter")
        assert app.contrib_target is None
        assert said[-1] == "no output 42: the model's output has 10 along its last dim (0 to 9)"
        await pilot.press("o", "9", "enter")
        assert app.contrib_target == 9
        app.contrib_target = 12  # set before the output was known: x says why, no traceback
        await pilot.press("x")
        text = app.query_one(ContribPanel).plain()
        assert text.startswith("no output 12") and "Error" not in text
        await pilot.press("q")

    drive_debugger(app, debugger, script)


def test_under_no_color_the_heat_map_and_its_legend_are_shades(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from inspector.engine.capture.values import DEFAULT_BUDGET

    monkeypatch.setenv("NO_COLOR", "1")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU())
    app, debugger = debugger_app(model, torch.randn(6, 6), keep_values=DEFAULT_BUDGET)

    def drawn() -> str:  # as the app's own console draws it: in colour, greyed afterwards
        console = Console(
            width=60, color_system="truecolor", no_color=False, record=True, file=io.StringIO()
        )
        console.print(app.query_one(DetailPanel).shown)
        return console.export_text()

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1  # the Linear: signed values
        await pilot.press("m")
        await wait_for(pilot, lambda: "heat map of 0 out" in drawn())
        text = drawn()
        assert "blue" not in text and "red" not in text and "▀" not in text
        assert "' ' 0 → '█' |" in text
        await pilot.press("q")

    drive_debugger(app, debugger, script)


@pytest.mark.parametrize(("size", "cells"), [((80, 24), "24x24"), ((160, 48), "48x48")])
def test_the_heat_map_grows_with_the_screen(size: tuple[int, int], cells: str) -> None:
    from inspector.engine.capture.values import DEFAULT_BUDGET

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    app, debugger = debugger_app(model, torch.randn(64, 64), keep_values=DEFAULT_BUDGET)

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1
        await pilot.press("m")
        panel = app.query_one(DetailPanel)
        await wait_for(pilot, lambda: "averaged to" in panel.plain())
        assert f"64x64 averaged to {cells} ·" in panel.plain()
        width = panel.content_region.width
        lines = panel.plain(width).splitlines()  # drawn in shades: one line a row of cells
        top = next(i for i, line in enumerate(lines) if line.startswith("heat map of"))
        rows = lines[top + 1 : top + 1 + int(cells.split("x")[0])]
        assert "averaged to" in lines[top + 1 + len(rows)]
        assert all(len(row) <= width for row in rows)  # the map fits the panel: no wrapping
        await pilot.press("q")

    try:
        drive(app, script, size=size)
    finally:
        debugger.stepper.release()
        debugger.join(10)
