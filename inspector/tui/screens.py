"""Modal screens: the key help, and jumping to a module by name."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

KEYS = (
    ("s", "step into: stop at the very next call start or end"),
    ("n", "step over: run the current call and its children"),
    ("r", "step out: run to the end of the enclosing call"),
    ("c", "continue: to the next breakpoint, error, or the end"),
    ("g", "go: run until a module whose path matches (glob) starts"),
    ("b", "toggle a breakpoint on the selected module"),
    ("← / [", "back: the previous recorded call"),
    ("→ / ]", "forward: the next recorded call"),
    ("/", "find a recorded module by name"),
    ("p", "switch between the call detail and the problems"),
    ("x", "contributions of the selected module to the output (gradient x activation)"),
    ("i", "the same by integrated gradients (32 steps, with progress)"),
    ("o", "which output to explain (an index; empty: the predicted class)"),
    ("space", "fold or unfold the selected container"),
    ("y", "copy the selected module's path"),
    ("?", "this help"),
    ("q", "quit: the rest of the pass runs without stopping"),
)


class HelpScreen(ModalScreen[None]):
    """The keys, pdb's where pdb has one."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2))
        for key, what in KEYS:
            table.add_row(f"[bold]{key}[/]", what)
        with Vertical(id="help"):
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
