"""Modal screens: the key help, one line of input, the breakpoint list.

A screen changes nothing outside itself: it answers with its result (dismiss) or a message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from inspector.engine.control.breakpoints import (
    CONDITIONS,
    Breakpoint,
    known_conditions,
    parse_breakpoint,
)
from inspector.tui import keys


def conditions_table() -> Group:
    """Every breakpoint condition, from the engine's one table of them."""
    table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
    table.add_column(no_wrap=True, min_width=keys.KEY_WIDTH, style="bold")
    table.add_column()
    for condition in CONDITIONS.values():
        table.add_row(condition.spelling, condition.help)
    heading = Text("Breakpoint conditions (B, a: `fc1 if nan`, `if absmax>100`)",
                   style="bold underline")  # fmt: skip
    return Group(Text(""), heading, table)


class HelpScreen(ModalScreen[None]):
    """The keys, pdb's where pdb has one."""

    BINDINGS = keys.bindings("help")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[bold]torch-inspector keys[/]  (escape to close)")
            yield Static(keys.help_table(), id="help-keys")
            yield Static(conditions_table(), id="help-conditions")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class AskScreen(ModalScreen[str | None]):
    """One line of input: a module name to find, or a glob to run to."""

    BINDINGS = keys.bindings("ask")

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="ask"):
            yield Static(self.prompt)
            yield Input(placeholder="e.g. fc1, layer2.*, Conv2d")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class BreakpointsScreen(ModalScreen[None]):
    """Every breakpoint: add one (with a condition), enable or disable, delete."""

    BINDINGS = keys.bindings("breakpoints")

    class Changed(Message):
        """The user changed the list: `breakpoints` is the whole new one."""

        def __init__(self, breakpoints: tuple[Breakpoint, ...]) -> None:
            super().__init__()
            self.breakpoints = breakpoints

    def __init__(self, breakpoints: Sequence[Breakpoint]) -> None:
        super().__init__()
        self.breakpoints = list(breakpoints)  # a copy: the app hears of each change
        self.cursor = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static("[bold]Breakpoints[/]  a add · space on/off · d delete · escape close")
            yield Static(id="bp-list")

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        table = Table(show_header=False, box=None, padding=(0, 1))
        if not self.breakpoints:
            table.add_row("[dim]none: a adds one, e.g. `fc*`, `Conv2d`, `fc1 #2`, `if nan`, "
                          "`decoder.* if absmax>100` (? lists every condition)[/]")  # fmt: skip
        for i, bp in enumerate(self.breakpoints):
            mark = "●" if bp.enabled else "○"
            style = "reverse" if i == self.cursor else ""
            table.add_row(f"[{style}]{mark} {bp.describe()}[/]" if style else f"{mark} "
                          f"{bp.describe()}")  # fmt: skip
        self.query_one("#bp-list", Static).update(table)

    def _changed(self) -> None:
        self._show()
        self.post_message(self.Changed(tuple(self.breakpoints)))

    def action_move(self, step: int) -> None:
        if self.breakpoints:
            self.cursor = max(0, min(self.cursor + step, len(self.breakpoints) - 1))
            self._show()

    def action_switch(self) -> None:
        if self.breakpoints:
            bp = self.breakpoints[self.cursor]
            self.breakpoints[self.cursor] = dataclasses.replace(bp, enabled=not bp.enabled)
            self._changed()

    def action_delete(self) -> None:
        if self.breakpoints:
            del self.breakpoints[self.cursor]
            self.cursor = max(0, min(self.cursor, len(self.breakpoints) - 1))
            self._changed()

    def action_add(self) -> None:
        def add(text: str | None) -> None:
            if not text:
                return
            try:
                self.breakpoints.append(parse_breakpoint(text))
            except (TypeError, ValueError) as exc:
                self.notify(str(exc), severity="error", timeout=4)
                return
            self.cursor = len(self.breakpoints) - 1
            self._changed()

        prompt = (f"Break at: a glob or type, `#N` for the Nth call, `if CONDITION`, "
                  f"one of {known_conditions()}:")  # fmt: skip
        self.app.push_screen(AskScreen(prompt), add)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
