"""The key table: BINDINGS, the footer, the command palette and `?` come from it.

A row says where the key is bound (`scope`): the app, the module tree, a dialog, or Textual
itself (those rows bind nothing: they document a key Textual already has, and a test checks
that it really does). Keys are pdb's where pdb has one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding

# One meaning in every entry point (debug(), run, set_trace/breakpoint(), attach()).
QUIT = "quit the debugger; your program runs on, no stops"


@dataclass(frozen=True)
class Key:
    """One row of the key table."""

    keys: tuple[str, ...]  # Textual key names; the first is the one the footer shows
    action: str
    label: str  # the footer's word for it
    description: str  # the help screen's line, and the palette's help text
    group: str
    footer: int = 0  # its place in the footer, from 1; 0: not in the footer
    scope: str = "app"  # "app" | "tree" | "help" | "ask" | "breakpoints" | "textual"
    title: str = ""  # the command palette's name for it; empty: not in the palette
    priority: bool = False  # before the focused widget sees the key (the tree has arrows)


# fmt: off
KEYS: tuple[Key, ...] = (
    Key(("s",), "step('into')", "step", "step into: stop at the very next call start or end",
        "Step", footer=1, title="Step into"),
    Key(("n",), "step('over')", "next", "step over: run the current call and its children",
        "Step", footer=2, title="Step over"),
    Key(("r",), "step('out')", "return", "step out: run to the end of the enclosing call",
        "Step", footer=3, title="Step out"),
    Key(("c",), "step('continue')", "continue", "continue: to a breakpoint, an error, or the end",
        "Step", footer=4, title="Continue"),
    Key(("g",), "go", "go to", "go: run until a module matching a glob starts", "Step",
        title="Go to module"),
    Key(("q",), "quit", "quit", QUIT, "Step", footer=7),
    Key(("ctrl+q",), "quit", "quit", "quit, as q", "Step", scope="textual"),
    Key(("ctrl+c",), "interrupt", "interrupt", "stop your program (KeyboardInterrupt)", "Step",
        priority=True),
    Key(("b",), "toggle_breakpoint", "break", "toggle a breakpoint on the selected module",
        "Breakpoints", footer=5, title="Toggle breakpoint"),
    Key(("B",), "breakpoints", "breakpoints", "breakpoints: add with a condition, on/off, delete",
        "Breakpoints", title="Breakpoints"),
    Key(("up", "k"), "cursor(-1)", "up", "the call above in the tree", "Move", scope="tree"),
    Key(("down", "j"), "cursor(1)", "down", "the call below in the tree", "Move", scope="tree"),
    Key(("pageup",), "page(-1)", "page up", "a page up the tree", "Move", scope="tree"),
    Key(("pagedown",), "page(1)", "page down", "a page down the tree", "Move", scope="tree"),
    Key(("home",), "jump(0)", "first", "the first call", "Move", scope="tree"),
    Key(("end",), "jump(-1)", "last", "the last call recorded", "Move", scope="tree"),
    Key(("ctrl+pageup",), "page_left", "left", "scroll the tree left (long rows)", "Move",
        scope="tree"),
    Key(("ctrl+pagedown",), "page_right", "right", "scroll the tree right (long rows)", "Move",
        scope="tree"),
    Key(("space", "enter"), "fold", "fold", "fold or unfold the selected container", "Move",
        scope="tree"),
    Key(("left", "left_square_bracket"), "history(-1)", "back",
        "back: the previous recorded call", "Move", title="Back", priority=True),
    Key(("right", "right_square_bracket"), "history(1)", "fwd",
        "forward: the next recorded call", "Move", title="Forward", priority=True),
    Key(("slash",), "find", "find", "find a recorded module by name", "Move",
        title="Find module"),
    Key(("J",), "scroll_side(1)", "scroll down",
        "scroll the right pane down (a long error box, the detail)", "Move",
        title="Scroll right pane down"),
    Key(("K",), "scroll_side(-1)", "scroll up", "scroll the right pane up", "Move",
        title="Scroll right pane up"),
    Key(("tab",), "app.focus_next", "next pane", "focus the next pane (tree, detail)", "Move",
        scope="textual"),
    Key(("shift+tab",), "app.focus_previous", "previous pane", "focus the previous pane", "Move",
        scope="textual"),
    Key(("p",), "toggle_view", "problems", "switch between the call's tensors and the problems",
        "View", title="Problems"),
    Key(("t",), "next_tensor", "tensor", "next tensor of the call: its histogram and heat map",
        "View", title="Next tensor"),
    Key(("m",), "heat_map", "heat map", "heat map of a 2-D slice of the tensor, on or off",
        "View", title="Heat map"),
    Key(("comma",), "slice(-1)", "prev slice", "previous slice of the heat map", "View"),
    Key(("full_stop",), "slice(1)", "next slice", "next slice of the heat map", "View"),
    Key(("less_than_sign",), "slice(-1, True)", "prev outer",
        "previous along the slice's outer dimension", "View"),
    Key(("greater_than_sign",), "slice(1, True)", "next outer",
        "next along the slice's outer dimension", "View"),
    Key(("x",), "contributions('grad_x_act')", "contrib",
        "contributions to the output (gradient x activation)", "View", title="Contributions"),
    Key(("i",), "contributions('integrated_gradients')", "integrated grad",
        "contributions by integrated gradients, with progress", "View",
        title="Integrated gradients"),
    Key(("o",), "pick_output", "explain which output",
        "which output to explain (empty: the predicted class)", "View",
        title="Explain which output"),
    Key(("y",), "copy_path", "copy path", "copy the selected module's path", "View",
        title="Copy module path"),
    Key(("question_mark",), "help", "keys", "this help", "Help", footer=6),
    Key(("ctrl+p",), "command_palette", "palette", "the command palette: any action by name",
        "Help", scope="textual"),
    Key(("super+c",), "screen.copy_text", "copy", "copy the text selected with the mouse",
        "Help", scope="textual"),
    Key(("escape", "q", "question_mark"), "dismiss", "close", "close this help",
        "Help", scope="help"),
    Key(("escape",), "cancel", "cancel", "close a question without an answer", "Dialogs",
        scope="ask"),
    Key(("a",), "add", "add", "add a breakpoint (glob or type, #N, if CONDITION)",
        "In the breakpoint list (B)", scope="breakpoints"),
    Key(("space",), "switch", "on/off", "turn the selected breakpoint on or off",
        "In the breakpoint list (B)", scope="breakpoints"),
    Key(("d", "delete"), "delete", "delete", "delete the selected breakpoint",
        "In the breakpoint list (B)", scope="breakpoints"),
    Key(("up",), "move(-1)", "up", "the breakpoint above", "In the breakpoint list (B)",
        scope="breakpoints"),
    Key(("down",), "move(1)", "down", "the breakpoint below", "In the breakpoint list (B)",
        scope="breakpoints"),
    Key(("escape", "q", "B"), "dismiss", "close", "close the list", "In the breakpoint list (B)",
        scope="breakpoints"),
)
# fmt: on

_SHOWN = {
    "left": "←", "right": "→", "up": "↑", "down": "↓",
    "left_square_bracket": "[", "right_square_bracket": "]", "slash": "/",
    "question_mark": "?", "comma": ",", "full_stop": ".", "less_than_sign": "<",
    "greater_than_sign": ">", "pageup": "PgUp", "pagedown": "PgDn", "tab": "Tab",
    "shift+tab": "shift+Tab", "escape": "Esc", "home": "Home", "end": "End",
    "delete": "Del", "ctrl+pageup": "ctrl+PgUp", "ctrl+pagedown": "ctrl+PgDn",
}  # fmt: skip


KEY_WIDTH = 11  # the help's key column: the same in every group


def key_display(key: str) -> str:
    """How the help shows a Textual key name: `pagedown` is `PgDn`, `question_mark` is `?`."""
    return _SHOWN.get(key, key)


def keys_display(row: Key) -> str:
    return "/".join(key_display(k) for k in row.keys)


def rows(scope: str) -> tuple[Key, ...]:
    return tuple(row for row in KEYS if row.scope == scope)


def bindings(scope: str) -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    """The Textual BINDINGS of one scope, the footer's first and in the footer's order."""
    ordered = sorted(rows(scope), key=lambda row: row.footer or len(KEYS) + 1)
    return [
        Binding(
            ",".join(row.keys),
            row.action,
            row.label,
            show=row.footer > 0,
            priority=row.priority,
            tooltip=row.description,
        )
        for row in ordered
    ]


def palette() -> Iterator[tuple[str, str, str]]:
    """(title, help, action) of every key that has a name in the command palette."""
    for row in KEYS:
        if row.title:
            yield row.title, f"{keys_display(row)}: {row.description}", row.action


def help_table() -> Group:
    """Every row of the table, by group: what `?` shows."""
    parts: list[RenderableType] = []
    group, table = "", Table()
    for row in KEYS:
        if row.group != group:
            group = row.group
            table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
            table.add_column(no_wrap=True, min_width=KEY_WIDTH, style="bold")
            table.add_column()
            heading = Text(group, style="bold underline")
            parts.extend((Text(""), heading, table) if parts else (heading, table))
        table.add_row(keys_display(row), row.description)
    return Group(*parts)
