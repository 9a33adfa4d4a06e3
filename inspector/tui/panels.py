"""Thin reactive shells over render/*: the problems and the status line (the detail and the
contributions have files of their own). The app sets their attributes; each draws itself."""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.text import Text
from textual.reactive import var
from textual.widgets import Static

from inspector.engine.records import Diagnosis
from inspector.render import DiagnosisPanel


class Shows(Static):
    """A Static that remembers the renderable it shows, so tests and copy can read it."""

    shown: RenderableType = ""

    def put(self, renderable: RenderableType, *, layout: bool = True) -> None:
        self.shown = renderable
        self.update(renderable, layout=layout)

    def plain(self, width: int = 100) -> str:
        console = Console(width=width, no_color=True, record=True, file=io.StringIO())
        console.print(self.shown)
        return console.export_text()


NARROW = 60  # a side pane narrower than this shows only the failing line, no context


class ProblemsPanel(Shows):
    """Every finding so far, each with its source line and fix: the fix first, under the
    summary, so that at 80x24 it is on screen without scrolling."""

    findings: var[tuple[Diagnosis, ...]] = var((), init=False)
    running: var[bool] = var(True, init=False)

    def on_mount(self) -> None:
        self._draw()

    def watch_findings(self) -> None:
        self._draw()

    def watch_running(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.findings:
            context = 0 if 0 < self.size.width < NARROW else 2
            body: RenderableType = Group(
                *(DiagnosisPanel(f, context=context, fix_first=True) for f in self.findings)
            )
        elif self.running:
            body = Text("No problem found so far: findings appear when the pass ends or fails.",
                        style="dim")  # fmt: skip
        else:
            body = Text("No problems found.", style="green")
        self.put(body)


class StatusLine(Shows):
    """`paused before fc1 (Linear) · call 7 · 23 recorded · pass 1`, and its style."""

    line: var[tuple[str, str]] = var(("starting…", ""), init=False)

    def on_mount(self) -> None:
        self.watch_line(self.line)

    def watch_line(self, line: tuple[str, str]) -> None:
        text, style = line
        # one line, whatever it says: no layout pass for the status
        self.put(Text(text, style=style, overflow="ellipsis", no_wrap=True), layout=False)
