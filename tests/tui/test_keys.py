"""The key table is the only list of keys: every binding the user can press is on `?`, and
every row of the table is really bound where it says. Generated from the table."""

from __future__ import annotations

import inspect
import io
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from inspector.tui import keys
from inspector.tui.app import InspectorApp
from inspector.tui.calltree import CallTree
from inspector.tui.factory import make_app
from inspector.tui.screens import AskScreen, BreakpointsScreen, HelpScreen
from tests.tui.support import FakeController, drive, mlp_trace, pause_at, wait_for


def help_lines() -> list[str]:
    """The `?` screen's key list, as shown, one line per row (the screen scrolls)."""
    app = make_app(FakeController())
    lines: list[str] = []

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")  # the help
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        body = app.screen.query_one("#help-keys", Static)
        console = Console(width=200, file=io.StringIO(), record=True, no_color=True)
        console.print(body.content)
        lines.extend(line.rstrip() for line in console.export_text().splitlines())

    drive(app, script)
    return lines


def bound(app: InspectorApp) -> dict[str, set[tuple[str, str]]]:
    """Scope -> every (key, action) bound there, Textual's own bindings included; a key the
    app binds with priority hides the same key below it (it never gets there)."""
    first = {k for k, bs in app._bindings.key_to_bindings.items() if any(b.priority for b in bs)}
    nodes = {
        "app": [app, app.screen],  # what the main screen answers whatever has focus
        "tree": [app.query_one(CallTree)],
        "help": [HelpScreen()],
        "ask": [AskScreen("?")],
        "breakpoints": [BreakpointsScreen(())],
    }
    found: dict[str, set[tuple[str, str]]] = {}
    for scope, where in nodes.items():
        pairs = found.setdefault(scope, set())
        for node in where:
            for key, bindings in node._bindings.key_to_bindings.items():
                if node is not app and key in first:
                    continue
                pairs.update((key, b.action) for b in bindings)
    return found


@pytest.fixture(scope="module")
def on_help() -> list[str]:
    return help_lines()


@pytest.fixture(scope="module")
def live() -> dict[str, set[tuple[str, str]]]:
    app = make_app(FakeController())
    found: dict[str, set[tuple[str, str]]] = {}

    async def script(pilot: Pilot[Any]) -> None:
        found.update(bound(app))

    drive(app, script)
    return found


@pytest.mark.parametrize("row", keys.KEYS, ids=lambda row: f"{row.scope}:{'/'.join(row.keys)}")
def test_every_row_is_on_the_help_screen(row: keys.Key, on_help: list[str]) -> None:
    shown = keys.keys_display(row)
    assert any(line.strip().startswith(shown) and row.description in line for line in on_help), (
        f"{shown} ({row.description}) is not on the ? screen"
    )


@pytest.mark.parametrize("row", keys.KEYS, ids=lambda row: f"{row.scope}:{'/'.join(row.keys)}")
def test_every_row_is_bound_where_it_says(
    row: keys.Key, live: dict[str, set[tuple[str, str]]]
) -> None:
    scope = "app" if row.scope == "textual" else row.scope  # Textual's own: app or screen
    for key in row.keys:
        assert (key, row.action) in live[scope], f"{key} is not bound to {row.action}"


def test_every_binding_is_a_row_of_the_table(live: dict[str, set[tuple[str, str]]]) -> None:
    table = {(key, row.action) for row in keys.KEYS for key in row.keys}
    missing = {scope: pairs - table for scope, pairs in live.items() if pairs - table}
    assert not missing, f"bound but not in the key table (so not on ?): {missing}"


def test_tab_pagedown_and_the_palette_are_on_the_help(on_help: list[str]) -> None:
    text = "\n".join(on_help)
    for shown in ("Tab", "PgDn", "ctrl+p", "ctrl+c", "?"):
        assert any(line.strip().startswith(shown) for line in on_help), shown
    assert "the command palette" in text


def test_the_footer_is_the_table_s_footer_rows_in_order() -> None:
    footer = sorted((row for row in keys.KEYS if row.footer), key=lambda row: row.footer)
    shown = [b for b in keys.bindings("app") if not isinstance(b, tuple) and b.show]
    assert [b.key for b in shown] == [",".join(row.keys) for row in footer]
    assert [b.key for b in shown][-2:] == ["question_mark", "q"]


def test_the_palette_runs_each_named_action() -> None:
    t = mlp_trace()
    controller = FakeController()
    app = make_app(controller)

    async def script(pilot: Pilot[Any]) -> None:
        app.post_event(pause_at(t, 1))
        await wait_for(pilot, lambda: app.pause is not None)
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        named = [row for row in keys.KEYS if row.title]
        assert {row.title for row in named} <= set(titles)
        assert len(named) >= 15
        done = titles["Step over"].callback()  # as choosing it in the palette does
        if inspect.isawaitable(done):
            await done
        await wait_for(pilot, lambda: controller.commands == [("over", "")])

    drive(app, script)


def test_every_breakpoint_condition_is_on_the_help_screen() -> None:
    from inspector.engine.control.breakpoints import CONDITIONS

    app = make_app(FakeController())
    text: list[str] = []

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")  # the help
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        body = app.screen.query_one("#help-conditions", Static)
        console = Console(width=200, file=io.StringIO(), record=True, no_color=True)
        console.print(body.content)
        text.append(console.export_text())

    drive(app, script)
    for condition in CONDITIONS.values():
        assert f"{condition.spelling} " in text[0] and condition.help in text[0]
