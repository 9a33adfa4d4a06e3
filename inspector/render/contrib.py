"""Contributions as signed bars: which units pushed the output up, which pulled it down."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from inspector.render.text import number


class ContributionBars:
    """Top terms, one line each: `  12  +0.4312  ████████      41.7%`. Positive green,
    negative red, bars scaled to the largest magnitude."""

    def __init__(self, title: str, terms: Sequence[tuple[int, float, float]], note: str = ""):
        self.title = title
        self.terms = terms  # (unit index, value, signed share of the total magnitude)
        self.note = note

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.title, style="bold")
        if not self.terms:
            yield Text("(no contributions)", style="dim")
            return
        top = max(abs(v) for _, v, _ in self.terms) or 1.0
        width = max(8, min(30, options.max_width - 36))
        index_width = max(len(str(i)) for i, _, _ in self.terms)
        for index, value, share in self.terms:
            cells = round(abs(value) / top * width)
            bar = "█" * cells if cells else ("▏" if value else "")
            style = "green" if value > 0 else ("red" if value < 0 else "dim")
            sign = "+" if value > 0 else ""
            yield Text.assemble(
                f"  {index:>{index_width}}  ",
                (f"{sign + number(value, 4):>10}", style),
                "  ",
                (f"{bar:<{width}}", style),
                f"  {100 * share:+6.1f}%" if value else "       -",
            )
        if self.note:
            yield Text(self.note, style="dim")
