"""Thin widgets over render/*: the call detail, the problems, the status line."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.text import Text
from textual.widgets import Static

from inspector.engine.records import Call, Diagnosis
from inspector.engine.values import HeatMap
from inspector.render import CallDetail, DiagnosisPanel


class _Shows(Static):
    """A Static that remembers the renderable it shows, so tests and copy can read it."""

    shown: RenderableType = ""

    def put(self, renderable: RenderableType, *, layout: bool = True) -> None:
        self.shown = renderable
        self.update(renderable, layout=layout)

    def plain(self, width: int = 100) -> str:
        console = Console(width=width, no_color=True, record=True, file=io.StringIO())
        console.print(self.shown)
        return console.export_text()


class DetailPanel(_Shows):
    """The selected call in detail."""

    def show(
        self, call: Call | None, selected: int | None = None, heat: HeatMap | str | None = None
    ) -> None:
        if call is None:
            self._height = None
            self.put(Text("No call selected.", "dim"))
            return
        detail = CallDetail(call, selected, heat, hint=True)
        # Stepping from call to call mostly changes numbers, not the number of lines: then
        # the screen needs no new layout, only a repaint (a third of a frame saved).
        width = self.content_region.width or self.size.width
        height = (detail.height_key(width), width)
        same = height == getattr(self, "_height", None)
        self._height = height
        self.put(detail, layout=not same)


class ProblemsPanel(_Shows):
    """Every finding so far, each with its source line and fix."""

    def show(self, findings: Sequence[Diagnosis], running: bool) -> None:
        if findings:
            body: RenderableType = Group(*(DiagnosisPanel(f) for f in findings))
        elif running:
            body = Text("No problem found so far: findings appear when the pass ends or fails.",
                        style="dim")  # fmt: skip
        else:
            body = Text("No problems found.", style="green")
        self.put(body)


class StatusLine(_Shows):
    """`paused before fc1 (Linear) · call 7 · 23 recorded · pass 1`."""

    def show(self, text: str, style: str = "") -> None:
        # one line, whatever it says: no layout pass for the status
        self.put(Text(text, style=style, overflow="ellipsis", no_wrap=True), layout=False)


class ContribPanel(_Shows):
    """The selected call's contributions toward the output, or how far their computation is."""

    def show_text(self, text: str, style: str = "dim") -> None:
        self.put(Text(text, style=style))
