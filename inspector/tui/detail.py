"""The selected call in detail, with a heat map of one of its tensors when asked for.

The heat map reads kept tensor values with torch: that runs in a worker thread, never in the
UI's; meanwhile the detail says it is being computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.reactive import var

from inspector.engine.capture.values import HeatMap
from inspector.engine.records import Call, TensorInfo
from inspector.render import CallDetail
from inspector.render.detail import call_tensors
from inspector.tui.controller import HEAT_COLS, Controller
from inspector.tui.panels import Shows

COMPUTING_HEAT = "computing the heat map…"


@dataclass(frozen=True, eq=False)
class DetailView:
    """What the detail shows: a call, which of its tensors, and whether with a heat map (of
    which slice). `calls` is the pass the call belongs to (to find its kept values)."""

    call: Call
    calls: tuple[Call, ...]
    row: int | None = None
    heat: bool = False
    slice_index: int = 0
    unwinding: bool = False  # paused at an error raised inside this (running) call

    def same_heat(self, other: DetailView | None) -> bool:
        return (
            other is not None
            and other.call is self.call
            and (other.row, other.slice_index) == (self.row, self.slice_index)
        )


class DetailPanel(Shows):
    """The selected call in detail. Says `HeatShown` when a heat map is drawn."""

    # always_update: two records of one call compare field by field, tensors and all
    view: var[DetailView | None] = var(None, always_update=True, init=False)

    class HeatShown(Message):
        """A heat map is on screen; `leading` is the shape of the dims its slices walk."""

        def __init__(self, leading: tuple[int, ...]) -> None:
            super().__init__()
            self.leading = leading

    class HeatReady(Message, bubble=False):
        """The worker made the heat map of `view` (or found why there is none)."""

        def __init__(self, view: DetailView, heat: HeatMap | str) -> None:
            super().__init__()
            self.view = view
            self.heat = heat

    def __init__(self, controller: Controller, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.controller = controller
        self._made: tuple[DetailView, HeatMap | str] | None = None  # the last heat map made
        self._height: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        self.put(Text("No call selected.", "dim"))

    def watch_view(self, view: DetailView | None) -> None:
        if view is None:
            self._height = None
            self.put(Text("No call selected.", "dim"))
            return
        self._draw(view, self._heat_of(view) if view.heat else None)

    def _draw(self, view: DetailView, heat: HeatMap | str | None) -> None:
        detail = CallDetail(view.call, view.row, heat, hint=True, plain=self.app.no_color,
                            unwinding=view.unwinding)  # fmt: skip
        # Stepping from call to call mostly changes numbers, not the number of lines: then
        # the screen needs no new layout, only a repaint (a third of a frame saved).
        width = self.content_region.width or self.size.width
        height = (detail.height_key(width), width)
        same = height == self._height
        self._height = height
        self.put(detail, layout=not same)

    def _heat_of(self, view: DetailView) -> HeatMap | str:
        """The heat map made for this view, or why there is none; or start making it."""
        rows = call_tensors(view.call)
        row = view.row
        if row is None or row >= len(rows) or not isinstance(rows[row][1], TensorInfo):
            return "no tensor selected (t picks one)"
        name, info = rows[row]
        assert isinstance(info, TensorInfo)
        if name.startswith("grad "):
            return "gradients are kept as statistics only"
        if self._made is not None and view.same_heat(self._made[0]):
            return self._made[1]
        position = None
        if name.startswith("out"):
            position = sum(
                1 for n, i in rows[:row] if n.startswith("out") and isinstance(i, TensorInfo)
            )
        controller, label = self.controller, f"{view.call.name} {name}"
        size = self.heat_size()

        def work() -> None:
            try:
                heat = controller.heatmap(
                    view.calls, view.call, info, position, view.slice_index, label, size
                )
            except Exception as exc:  # a tensor it cannot draw: say so, keep the app
                heat = f"{type(exc).__name__}: {exc}"
            self.post_message(self.HeatReady(view, heat))

        self.run_worker(work, thread=True, exclusive=True, group="heat")
        return COMPUTING_HEAT

    def heat_size(self) -> tuple[int, int]:
        """The most cells (rows, columns) a heat map can show here: the panel's width, and
        half the screen's height in lines (two rows of cells a line in colour, one in shades).
        24x24 cells at 80x24; at 160x48 the map grows with the screen."""
        width = self.content_region.width or self.size.width or HEAT_COLS
        lines = max(8, self.app.size.height // 2)
        return lines * (1 if self.app.no_color else 2), max(16, width - 1)

    def on_detail_panel_heat_ready(self, message: HeatReady) -> None:
        self._made = (message.view, message.heat)
        view = self.view
        if view is not None and view.heat and view.same_heat(message.view):
            self._draw(view, message.heat)
            heat = message.heat
            self.post_message(self.HeatShown(heat.leading if isinstance(heat, HeatMap) else ()))
