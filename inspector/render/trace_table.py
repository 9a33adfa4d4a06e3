"""The trace as a table: one row per call, indented as a tree, shapes and key statistics."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from inspector.engine.records import Call, first_tensor
from inspector.render.text import count, grad_text, io_shapes, number

STATUS_MARK = {"ok": ("✓", "green"), "error": ("✗", "bold red"), "running": ("▶", "yellow")}


def call_label(call: Call) -> str:
    """The last part of the path, indented by depth: `  conv1`, `    block.0 (call 2)`."""
    if not call.path:
        base = f"({call.type})"
    elif call.depth == 0:
        base = call.path
    else:
        base = call.path.rsplit(".", 1)[-1]
    if call.index:
        base += f" (call {call.index + 1})"
    return "  " * call.depth + base


def output_stats(call: Call) -> tuple[str, str]:
    """(`mean ± std`, `zero %`) of the call's first output tensor, or blanks."""
    info = first_tensor(call.outputs) if call.status == "ok" else None
    if info is None or info.stats is None:
        return "", ""
    s = info.stats
    mean_std = f"{number(s.mean, 3)} ± {number(s.std, 3)}"
    if not s.finite:
        mean_std = f"NaN {s.nan} Inf {s.inf}"
    zeros = f"{100 * s.zero_fraction:.0f}%" if s.zero_fraction else ""
    return mean_std, zeros


class TraceTable:
    """Every call of a pass in call order; failed calls in red, `highlight` marked."""

    def __init__(
        self, calls: Sequence[Call], *, highlight: int | None = None, title: str | None = None
    ) -> None:
        self.calls = calls
        self.highlight = highlight
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        wide = width >= 100  # params and zero % only when there is room for them
        table = Table(
            box=box.SIMPLE_HEAD,
            title=self.title,
            title_justify="left",
            pad_edge=False,
            show_edge=False,
        )
        table.add_column("", width=1, no_wrap=True)
        table.add_column("module", no_wrap=True, overflow="ellipsis", max_width=24)
        grads = any(call.grad is not None for call in self.calls)
        typed = width >= 70 and not (grads and width < 100)  # the gradient column first
        if typed:
            table.add_column("type", no_wrap=True, overflow="ellipsis", max_width=14)
        table.add_column("input → output", overflow="fold", min_width=20, ratio=1)
        if wide:
            table.add_column("params", justify="right", no_wrap=True)
        table.add_column("mean ± std", justify="right", no_wrap=True)
        if wide:
            table.add_column("zero", justify="right", no_wrap=True)
        if grads:
            table.add_column("grad rms", justify="right", no_wrap=True, min_width=8)
        for call in self.calls:
            mark, mark_style = STATUS_MARK.get(call.status, ("?", ""))
            mean_std, zeros = output_stats(call)
            style = "bold red" if call.status == "error" else ""
            if call.seq == self.highlight:
                style = "reverse"
            cells: list[Text | str] = [Text(mark, style=mark_style), Text(call_label(call))]
            if typed:
                cells.append(Text(call.type, style="cyan"))
            cells.append(Text(io_shapes(call)))
            if wide:
                cells.append(count(call.params) if call.params else "")
            cells.append(mean_std)
            if wide:
                cells.append(zeros)
            if grads:
                g = grad_text(call).removeprefix("∇ ")
                cells.append(Text(g, style="bold red" if g in ("NaN", "Inf") else "magenta"))
            table.add_row(*cells, style=style)
        yield table
