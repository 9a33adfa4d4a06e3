"""Modal screens: the key help, and jumping to a module by name."""

from __future__ import annotations

import dataclasses

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from inspector.engine.stepper import Breakpoint, parse_breakpoint

# One meaning in every entry point (debug(), run, set_trace/breakpoint(), attach()).
QUIT = "quit the debugger; your program runs on, no stops"

KEYS = (
    ("s", "step into: stop at the very next call start or end"),
    ("n", "step over: run the current call and its children"),
    ("r", "step out: run to the end of the enclosing call"),
    ("c", "continue: to a breakpoint, an error, or the end"),
    ("q", QUIT),
    ("^c", "stop your program (KeyboardInterrupt)"),
    ("g", "go: run until a module matching a glob starts"),
    ("b", "toggle a breakpoint on the selected module"),
    ("B", "breakpoints: add with a condition, on/off, delete"),
    ("← / [", "back: the previous recorded call"),
    ("→ / ]", "forward: the next recorded call"),
    ("/", "find a recorded module by name"),
    ("p", "switch between the call's tensors and the problems"),
    ("t", "next tensor of the call: its histogram and heat map"),
    ("m", "heat map of a 2-D slice of the tensor, on or off"),
    (", / .", "previous / next slice of the heat map"),
    ("< / >", "previous / next along the slice's outer dimension"),
    ("x", "contributions to the output (gradient x activation)"),
    ("i", "contributions by integrated gradients, with progress"),
    ("o", "which output to explain (empty: the predicted class)"),
    ("space", "fold or unfold the selected container"),
    ("y", "copy the selected module's path"),
    ("?", "this help; ctrl+p finds any action by name"),
)


class HelpScreen(ModalScreen[None]):
    """The keys, pdb's where pdb has one."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2))
        for key, what in KEYS:
            table.add_row(f"[bold]{key}[/]", what)
        with VerticalScroll(id="help"):
            yield Static("[bold]torch-inspector keys[/]  (escape to close)")
            yield Static(table)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class AskScreen(ModalScreen[str | None]):
    """One line of input: a module name to find, or a glob to run to."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

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

    BINDINGS = [
        Binding("escape,q,B", "dismiss", "close"),
        Binding("a", "add", "add"),
        Binding("space", "switch", "on/off"),
        Binding("d,delete", "delete", "delete"),
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
    ]

    def __init__(self, breakpoints: list[Breakpoint]) -> None:
        super().__init__()
        self.breakpoints = breakpoints  # the stepper's own list, changed in place
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
            table.add_row("[dim]none: a adds one, e.g. `fc*`, `Conv2d`, `fc1 #2`, "
                          "`if nan`, `decoder.* if absmax>100`[/]")  # fmt: skip
        for i, bp in enumerate(self.breakpoints):
            mark = "●" if bp.enabled else "○"
            style = "reverse" if i == self.cursor else ""
            table.add_row(f"[{style}]{mark} {bp.describe()}[/]" if style else f"{mark} "
                          f"{bp.describe()}")  # fmt: skip
        self.query_one("#bp-list", Static).update(table)

    def action_move(self, step: int) -> None:
        if self.breakpoints:
            self.cursor = max(0, min(self.cursor + step, len(self.breakpoints) - 1))
            self._show()

    def action_switch(self) -> None:
        if self.breakpoints:
            bp = self.breakpoints[self.cursor]
            self.breakpoints[self.cursor] = dataclasses.replace(bp, enabled=not bp.enabled)
            self._show()

    def action_delete(self) -> None:
        if self.breakpoints:
            del self.breakpoints[self.cursor]
            self.cursor = max(0, min(self.cursor, len(self.breakpoints) - 1))
            self._show()

    def action_add(self) -> None:
        def add(text: str | None) -> None:
            if not text:
                return
            try:
                self.breakpoints.append(parse_breakpoint(text))
            except (TypeError, ValueError) as exc:
                self.notify(str(exc), severity="error", timeout=4)
            self.cursor = max(len(self.breakpoints) - 1, 0)
            self._show()

        self.app.push_screen(AskScreen("Break at (glob or type, `#N` for the Nth call, "
                                       "`if nan|inf|batch|absmax>N`):"), add)  # fmt: skip

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
