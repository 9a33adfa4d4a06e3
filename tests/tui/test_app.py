"""The TUI driven by Pilot with injected engine events: no model thread needed."""

from __future__ import annotations

from typing import Any

import torch
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher
from torch import nn

import inspector
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.debugger import Finished
from inspector.tui.calltree import CallTree
from inspector.tui.contrib import ContribPanel
from inspector.tui.detail import DetailPanel
from inspector.tui.factory import make_app
from inspector.tui.panels import ProblemsPanel
from tests.helpers import load_example
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


def test_tree_grows_with_each_pause_and_keys_send_commands() -> None:
    t = mlp_trace()
    controller = FakeController()
    app = make_app(controller)

    async def script(pilot: Pilot[Any]) -> None:
        tree = app.query_one(CallTree)
        app.post_event(pause_at(t, 0))
        await wait_for(pilot, lambda: app.pause is not None)
        assert status(app).startswith("paused before (root) (Sequential)")
        await pilot.press("s")  # step into
        assert controller.commands == [("into", "")]
        await pilot.press("n")  # not paused any more: nothing is sent
        assert controller.commands == [("into", "")]
        app.post_event(pause_at(t, 1))
        await wait_for(pilot, lambda: tree.has(1))
        label = row_text(tree, 1)
        assert "▶ 0  Linear" in label and "(3, 4) → (3, 8)" in label
        await pilot.press("n")  # step over
        app.post_event(pause_at(t, 3))
        await wait_for(pilot, lambda: tree.has(3))
        await pilot.press("r")  # step out
        app.post_event(pause_at(t, 3, "exit"))
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")  # continue
        assert [k for k, _ in controller.commands] == ["into", "over", "out", "continue"]
        assert status(app) == "running…"

    drive(app, script)


def test_breakpoint_toggles_on_the_selected_module() -> None:
    t = mlp_trace()
    controller = FakeController()
    app = make_app(controller)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 2))
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("b")  # breakpoint on the paused call, module "1"
        assert [b.pattern for b in controller.breakpoints] == ["1"]
        assert "●" in row_text(app.query_one(CallTree), 2)
        await pilot.press("b")  # and off again
        assert controller.breakpoints == []

    drive(app, script)


def test_back_forward_and_find_move_through_recorded_calls() -> None:
    t = mlp_trace()
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        tree = app.query_one(CallTree)
        app.post_event(pause_at(t, 3, "exit"))
        await wait_for(pilot, lambda: app.pause is not None)
        assert app.selected == 3
        await pilot.press("left")  # back
        assert app.selected == 2
        await pilot.press("left_square_bracket")  # back again
        assert app.selected == 1
        await wait_for(pilot, lambda: tree.selected_seq == 1)  # the cursor follows
        await pilot.press("right")  # forward
        assert app.selected == 2
        await pilot.press("slash")  # find
        await pilot.press(*"2", "enter")
        await wait_for(pilot, lambda: app.selected == 3)
        detail = app.query_one(DetailPanel).plain()
        assert "Linear" in detail

    drive(app, script)


def test_a_failed_pass_jumps_to_the_problems() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(6, 2))
    t = inspector.trace(model, torch.randn(3, 4))
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(Finished(t))
        await wait_for(pilot, lambda: app.finished is not None)
        assert app.query_one(ContentSwitcher).current == "problems"
        assert status(app).startswith("failed: RuntimeError in 1")
        problems = app.query_one(ProblemsPanel).plain()
        assert "nn.Linear(8, 2)" in problems
        await pilot.press("p")  # back to the detail
        assert app.query_one(ContentSwitcher).current == "detail"

    drive(app, script)


def test_help_opens_and_closes_and_q_quits() -> None:
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ != "HelpScreen")
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_end_to_end_on_the_seed_cnn() -> None:
    model, args = load_example("seed_cnn").build()
    app, debugger = debugger_app(model, *args)

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")  # runs to the failure
        await wait_for(pilot, lambda: app.pause is not None and app.pause.reason == "error")
        assert app.query_one(ContentSwitcher).current == "problems"
        assert "768" in app.query_one(ProblemsPanel).plain()
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        await pilot.press("q")

    drive_debugger(app, debugger, script)
    assert debugger.finished is not None and isinstance(debugger.finished.trace.error, RuntimeError)


def test_contributions_view_after_the_pass() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    app, debugger = debugger_app(model, torch.randn(2, 4))

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("x")  # mid-pass: explains how to get there
        assert "press c to continue" in app.query_one(ContribPanel).plain()
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1  # the first Linear
        await pilot.press("x")
        await wait_for(
            pilot, lambda: "gradient x activation" in app.query_one(ContribPanel).plain()
        )
        text = app.query_one(ContribPanel).plain()
        assert "0 → the predicted class of each sample" in text and "%" in text
        await pilot.press("o", "2", "enter")  # explain output 2 instead of the predicted class
        await pilot.press("i")  # integrated gradients, with its completeness gap
        await wait_for(pilot, lambda: "completeness gap" in app.query_one(ContribPanel).plain())
        assert "0 → output 2 (integrated gradients" in app.query_one(ContribPanel).plain()
        await pilot.press("q")

    drive_debugger(app, debugger, script)


def test_breakpoint_list_adds_conditions_toggles_and_deletes() -> None:
    t = mlp_trace()
    controller = FakeController()
    app = make_app(controller)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 0))
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("B")  # the breakpoint list
        await wait_for(pilot, lambda: type(app.screen).__name__ == "BreakpointsScreen")
        await pilot.press("a", *"2 #1 if nan", "enter")  # add: module 2, first call, on NaN
        await wait_for(pilot, lambda: len(controller.breakpoints) == 1)
        bp = controller.breakpoints[0]
        assert (bp.pattern, bp.nth, bp.condition, bp.enabled) == ("2", 1, "nan", True)
        await pilot.press("space")  # off
        assert controller.breakpoints[0].enabled is False
        await pilot.press("a", *"if absmax>5", "enter")
        await wait_for(pilot, lambda: len(controller.breakpoints) == 2)
        assert controller.breakpoints[1].pattern == "*"
        await pilot.press("d")  # delete the selected (the last added)
        assert [b.condition for b in controller.breakpoints] == ["nan"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ != "BreakpointsScreen")

    drive(app, script)


def test_parse_breakpoint_rejects_what_it_cannot_read() -> None:
    import pytest

    from inspector.tui.screens import parse_breakpoint

    assert parse_breakpoint("Conv2d").pattern == "Conv2d"
    with pytest.raises(ValueError, match="call number"):
        parse_breakpoint("fc1 #two")
    with pytest.raises(ValueError, match="unknown breakpoint condition"):
        parse_breakpoint("fc1 if nans")


def test_stepping_into_the_backward_pass_shows_gradients() -> None:
    model, args = load_example("deep_sigmoid").build()
    module = load_example("deep_sigmoid")
    app, debugger = debugger_app(
        model, *args, loss_fn=module.loss_fn, target=module.target(), backward=True,
        breakpoints=[Breakpoint("loss_fn")],
    )  # fmt: skip

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None)
        await pilot.press("c")  # to the loss
        await wait_for(pilot, lambda: app.pause is not None and app.pause.call.path == "loss_fn")
        for _ in range(3):  # the loss ends, then the backward pass reaches it, then the root
            await pilot.press("s")
            await wait_for(pilot, lambda: app.pause is not None)
        assert app.pause is not None and app.pause.phase == "backward"
        assert "paused in the backward of (root) (Sequential)" in status(app)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.pause is not None and app.pause.call.path == "25")
        detail = app.query_one(DetailPanel).plain()
        assert "grad out" in detail
        tree = app.query_one(CallTree)
        assert "∇ " in row_text(tree, app.pause.call.seq)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        assert "vanishing gradients" in app.query_one(ProblemsPanel).plain()
        await pilot.press("q")

    drive_debugger(app, debugger, script)
    assert debugger.finished is not None and debugger.finished.trace.error is None


def test_heat_map_keys_pick_the_tensor_and_the_slice() -> None:
    from inspector.engine.capture.values import DEFAULT_BUDGET

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
    app, debugger = debugger_app(
        model, torch.randn(2, 3, 6, 6), keep_values=DEFAULT_BUDGET, breakpoints=["1"],
        stop_at_start=False,
    )  # fmt: skip

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.pause is not None and app.pause.call.path == "1")
        await pilot.press("c")
        await wait_for(pilot, lambda: app.finished is not None)
        app.selected = 1  # the conv
        await pilot.press("m")
        await wait_for(
            pilot, lambda: "heat map of 0 out[0, 0" in app.query_one(DetailPanel).plain()
        )
        detail = app.query_one(DetailPanel).plain()
        assert "slice 1 of 8" in detail and "6x6" in detail
        await pilot.press("full_stop")
        await wait_for(
            pilot, lambda: "out[0, 1, :, :]  slice 2 of 8" in app.query_one(DetailPanel).plain()
        )
        await pilot.press("greater_than_sign")
        await wait_for(
            pilot, lambda: "out[1, 1, :, :]  slice 6 of 8" in app.query_one(DetailPanel).plain()
        )
        await pilot.press("t")  # next tensor: wraps to the input, the root's input
        await wait_for(
            pilot, lambda: "heat map of 0 in[0][0, 0" in app.query_one(DetailPanel).plain()
        )
        await pilot.press("m")
        await wait_for(pilot, lambda: "heat map of 0" not in app.query_one(DetailPanel).plain())
        await pilot.press("q")

    drive_debugger(app, debugger, script)


def test_every_key_action_is_in_the_command_palette() -> None:
    t = mlp_trace()
    controller = FakeController()
    app = make_app(controller)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 1))
        await wait_for(pilot, lambda: app.pause is not None)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Step into", "Continue", "Heat map", "Breakpoints", "Copy module path"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        for ch in "Step over":
            await pilot.press("space" if ch == " " else ch)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: controller.commands == [("over", "")])

    drive(app, script)


def test_themes_apply_to_every_panel() -> None:
    t = mlp_trace()
    app = make_app(FakeController())

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 1))
        await wait_for(pilot, lambda: app.pause is not None)
        tree = app.query_one(CallTree)
        dark = tree.styles.border_right[1]
        app.theme = "textual-light"
        await pilot.pause(0.1)
        assert tree.styles.border_right[1] != dark  # $primary-background follows the theme
        assert "paused before 0 (Linear)" in status(app)

    drive(app, script)


def test_the_tree_keeps_its_size_while_a_running_pass_fits_the_view() -> None:
    # A new scroll size costs a layout of the whole screen (10-20 ms a step): while the rows
    # of a running pass fit in the view the size stays put, and without a vertical scrollbar
    # (even when long rows show a horizontal one); past the view it grows in blocks; once the
    # pass ends it is the rows' own count.
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(30):
        layers += [nn.Linear(4, 4), nn.ReLU()]
    t = inspector.trace(nn.Sequential(*layers), torch.randn(2, 4))
    app = make_app(FakeController())
    sizes: list[tuple[int, int]] = []

    async def script(pilot: Pilot[Any]) -> None:
        tree = app.query_one(CallTree)
        for seq in range(len(t.calls)):
            app.post_event(pause_at(t, seq))
            await wait_for(pilot, lambda: tree.has(seq))  # noqa: B023
            await pilot.pause()
            size = (tree.virtual_size.width, tree.virtual_size.height)
            if not sizes or sizes[-1] != size:
                sizes.append(size)
            if seq + 1 < tree.size.height - 1:
                assert not tree.show_vertical_scrollbar, seq
        view = tree.size.height - tree.styles.scrollbar_size_horizontal
        heights = [h for _, h in sizes]
        assert heights[0] == view  # the first pause already takes the whole view
        assert all(h % 32 == 0 for h in heights[1:]) and len(heights) <= 3, heights
        app.post_event(Finished(t))
        await wait_for(pilot, lambda: app.pause is None)
        await pilot.pause()
        assert tree.virtual_size.height == len(t.calls)

    drive(app, script, size=(80, 24))
