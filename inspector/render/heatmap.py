"""A heat map of a 2-D tensor slice in the terminal: two cells per character with half blocks.

Signed values use a diverging scale (blue below zero, red above, white at zero, symmetric),
non-negative ones a dark-to-bright scale. Without colour (NO_COLOR, a dumb terminal) each
character shows one cell as a shade from ' ' to '█'.
"""

from __future__ import annotations

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

from inspector.engine.capture.values import HeatMap
from inspector.render.text import number

SHADES = " ░▒▓█"


def _diverging(v: float, scale: float) -> Color:
    t = max(-1.0, min(1.0, v / scale)) if scale > 0 else 0.0
    if t >= 0:  # white -> red
        return Color.from_rgb(255, round(255 * (1 - t)), round(255 * (1 - t)))
    t = -t  # white -> blue
    return Color.from_rgb(round(255 * (1 - t)), round(255 * (1 - t)), 255)


_SEQUENTIAL = ((0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164))


def _sequential(v: float, lo: float, hi: float) -> Color:
    t = (v - lo) / (hi - lo) if hi > lo else 0.0
    t = max(0.0, min(1.0, t)) * (len(_SEQUENTIAL) - 1)
    i = min(int(t), len(_SEQUENTIAL) - 2)
    f = t - i
    a, b = _SEQUENTIAL[i], _SEQUENTIAL[i + 1]
    r, g, bl = (round(a[k] + (b[k] - a[k]) * f) for k in range(3))
    return Color.from_rgb(r, g, bl)


class HeatMapView:
    """Renders a HeatMap (or the reason there is none) with its slice, size and range."""

    def __init__(self, heat: HeatMap | str, title: str = "", *, plain: bool = False) -> None:
        self.heat = heat
        self.title = title
        # shades, not colours: for a screen whose colours are taken away after drawing
        # (a full-screen app under NO_COLOR), where the console itself still has colour
        self.plain = plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        heat = self.heat
        if isinstance(heat, str):
            yield Text(f"heat map: {heat}", style="dim")
            return
        where = ", ".join(str(i) for i in heat.index)
        head = f"heat map of {heat.label or 'tensor'}"
        if heat.index:
            head += f"[{where}, :, :]  slice {heat.flat_index + 1} of {heat.slices}"
        yield Text(head, style="bold")
        signed = heat.lo < 0 < heat.hi
        scale = max(abs(heat.lo), abs(heat.hi))
        plain = self.plain or console.no_color or console.color_system is None
        rows = heat.values
        if plain:
            for row in rows:
                shades = "".join(self._shade(v, signed, scale, heat.lo, heat.hi) for v in row)
                yield Text(shades)
        else:
            for top in range(0, len(rows), 2):
                line = Text()
                upper = rows[top]
                lower = rows[top + 1] if top + 1 < len(rows) else None
                for col, v in enumerate(upper):
                    fg = _diverging(v, scale) if signed else _sequential(v, heat.lo, heat.hi)
                    bg = None
                    if lower is not None:
                        w = lower[col]
                        bg = _diverging(w, scale) if signed else _sequential(w, heat.lo, heat.hi)
                    line.append("▀", Style(color=fg, bgcolor=bg))
                yield line
        scale_note = (
            f"blue {number(-scale, 3)} · white 0 · red {number(scale, 3)}"
            if signed
            else f"dark {number(heat.lo, 3)} → bright {number(heat.hi, 3)}"
        )
        if plain:
            scale_note = f"' ' {number(heat.lo, 3)} → '█' {number(heat.hi, 3)}"
            if signed:
                scale_note = f"' ' 0 → '█' |{number(scale, 3)}|"
        size = f"{heat.size[0]}x{heat.size[1]}"
        note = heat.note or size
        yield Text(f"{note} · {scale_note}", style="dim")

    @staticmethod
    def _shade(v: float, signed: bool, scale: float, lo: float, hi: float) -> str:
        if signed:
            t = abs(v) / scale if scale > 0 else 0.0
        else:
            t = (v - lo) / (hi - lo) if hi > lo else 0.0
        t = max(0.0, min(1.0, t))
        return SHADES[round(t * (len(SHADES) - 1))]
