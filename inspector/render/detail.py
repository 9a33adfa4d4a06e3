"""One call in detail: the module line, a table of its tensors with statistics, a histogram."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from inspector.engine.capture.values import HeatMap
from inspector.engine.distributed import launched_rank
from inspector.engine.records import Call, Stats, Struct, TensorInfo, Value, format_shape
from inspector.render.heatmap import HeatMapView
from inspector.render.text import count, number

BARS = " ▁▂▃▄▅▆▇█"


def named_tensors(prefix: str, value: Value) -> Iterator[tuple[str, TensorInfo | str]]:
    """(`input[0]`, TensorInfo) for every tensor in a described value; other leaves as text."""
    if isinstance(value, TensorInfo):
        yield prefix, value
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from named_tensors(f"{prefix}[{i}]", item)
    elif isinstance(value, Struct):
        for key, item in value.fields:
            yield from named_tensors(f"{prefix}.{key}", item)
    elif value is not None:
        yield prefix, repr(value) if isinstance(value, str) else str(value)


RUNNING = "running: appears when the call returns"
UNWINDING = "none: an error raised inside this call is on its way out"


def call_tensors(call: Call) -> list[tuple[str, TensorInfo | str]]:
    rows: list[tuple[str, TensorInfo | str]] = []
    for i, value in enumerate(call.inputs):
        rows.extend(named_tensors(f"in[{i}]", value))
    if call.kwargs is not None:
        for key, value in call.kwargs.fields:
            rows.extend(named_tensors(f"in.{key}", value))
    if call.status == "running":
        rows.append(("out", RUNNING))
    elif call.status != "error":
        outs = list(named_tensors("out", call.outputs))
        rows.extend(outs)
        if call.grad is not None:
            rows.extend(gradient_rows(call, outs))
    return rows


def gradient_rows(
    call: Call, outs: list[tuple[str, TensorInfo | str]]
) -> list[tuple[str, TensorInfo | str]]:
    """`grad out` rows: each output tensor's gradient, shown with the output's shape."""
    assert call.grad is not None
    rows: list[tuple[str, TensorInfo | str]] = []
    tensors = [(name, info) for name, info in outs if isinstance(info, TensorInfo)]
    for (name, info), stats in zip(tensors, call.grad.outputs, strict=False):
        if stats is not None:
            grad = TensorInfo(info.shape, info.dtype, info.device, stats=stats)
            rows.append(("grad " + name, grad))
    return rows


def gradient_line(call: Call) -> Text | None:
    """`∇ weight 0.17 (0.058 of |w|) · bias 0.02` for the module's own parameters."""
    if call.grad is None or not call.grad.params:
        return None
    line = Text("param grads  ", style="bold")
    rank = launched_rank()
    if rank is not None:  # the hooks saw them before the all-reduce: this rank's own
        line = Text.assemble(
            ("param grads", "bold"),
            (f" (rank {rank}'s own, before the ranks are averaged)  ", "dim"),
        )
    for i, (name, grad, size) in enumerate(call.grad.params):
        if i:
            line.append(" · ", style="dim")
        bad = grad != grad or grad in (float("inf"), float("-inf"))
        line.append(f"{name} |g| {number(grad, 3)}", style="bold red" if bad else "")
        if size > 0 and not bad:
            line.append(f" ({number(grad / size, 2)} of |w|)", style="dim")
    return line


def units_line(call: Call) -> Text | None:
    """Dead units of a ReLU layer, the saturated share of a sigmoid/tanh layer."""
    units = call.units
    if units is None:
        return None
    if units.dead:
        shown = ", ".join(str(i) for i in units.dead[:10])
        more = f", … {len(units.dead) - 10} more" if len(units.dead) > 10 else ""
        return Text(
            f"dead units: {len(units.dead)} of {units.count} ({shown}{more})", style="yellow"
        )
    if units.saturated is not None:
        style = "yellow" if units.saturated >= 0.5 else "dim"
        return Text(f"saturated: {100 * units.saturated:.0f}% of outputs at the bounds", style)
    return None


class Histogram:
    """A one-line sparkline of a tensor's value histogram, with its range."""

    def __init__(self, stats: Stats, width: int = 48) -> None:
        self.stats = stats
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        counts = list(self.stats.histogram)
        if not counts:
            yield Text("(no histogram)", style="dim")
            return
        top = max(counts) or 1
        bars = "".join(BARS[round(c / top * (len(BARS) - 1))] for c in counts)
        lo, hi = self.stats.histogram_range
        yield Text.assemble((f"{number(lo):>9} ", "dim"), (bars, "cyan"), (f" {number(hi)}", "dim"))
        note = f"{self.stats.sampled} of {self.stats.numel} values"
        yield Text(f"{'':>10}{note}", style="dim")


def tensor_table(
    rows: list[tuple[str, TensorInfo | str]], selected: int | None = None, width: int = 100
) -> Text:
    """Shape and statistics per tensor, in aligned columns; fewer columns when narrow, the
    least telling dropped first until the rest fit. NaN/Inf columns whenever a tensor has
    NaN or Inf, and then they, min and max are the last to go. Plain aligned Text: a rich
    Table costs 5x more to draw, and this is redrawn at every step."""
    infos = [i for _, i in rows if isinstance(i, TensorInfo)]
    bad_any = any(i.stats is not None and not i.stats.finite for i in infos)
    columns = ["shape", "dtype", "mean", "std", "min", "max", "zero"]
    if bad_any or width >= 90:
        columns += ["NaN", "Inf"]
    grid: list[list[Text]] = [[Text(c, style="bold") for c in ["", *columns]]]
    for name, info in rows:
        label = Text(name if len(name) <= 16 else name[:15] + "…")
        if isinstance(info, str):
            grid.append([label, Text(info, style="dim")])
        else:
            grid.append([label, *(_cell(info, c) for c in columns)])
    # a text row (a non-tensor value, a call still running) spans the columns: it does not
    # widen them
    full = [r for r in grid if len(r) > 2]  # the header is always one
    widths = [max(len(r[0]) for r in grid)]
    widths += [max(len(r[i]) for r in full) for i in range(1, len(columns) + 1)]
    keep = _fitting(columns, widths, width, bad_any)
    kept = [0, *(i + 1 for i, c in enumerate(columns) if c in keep)]
    grid = [[r[i] for i in kept if i < len(r)] if len(r) > 2 else r for r in grid]
    widths = [widths[i] for i in kept]
    columns = [c for c in columns if c in keep]
    left = {0, 1} | ({2} if "dtype" in columns else set())
    out = Text(no_wrap=True, overflow="ellipsis")
    for r, cells in enumerate(grid):
        line = Text(style="reverse" if selected is not None and r - 1 == selected else "")
        for i, cell in enumerate(cells):
            if i:
                line.append("  ")
            pad = " " * (widths[i] - len(cell))
            line.append_text(cell + pad if i in left or len(cells) == 2 else Text(pad) + cell)
        out.append_text(line)
        out.append("\n")
        if r == 0:
            out.append("─" * (sum(widths) + 2 * len(columns)) + "\n", style="dim")
    out.rstrip()
    return out


# Which column goes first when the table is too wide: the least telling first. With NaN or
# Inf in a tensor, those counts and the range (min, max) are what the user came to see.
DROP_ORDER = ("dtype", "zero", "Inf", "NaN", "max", "min", "std", "mean")
DROP_ORDER_BAD = ("dtype", "zero", "std", "mean", "max", "min")


def _fitting(columns: list[str], widths: list[int], width: int, bad: bool) -> set[str]:
    """The columns kept at `width` (widths[0] is the name column's); shape always stays."""
    keep = set(columns)
    if width < 64:  # narrow: dtype and zero % only when there is room to spare
        keep -= {"dtype", "zero"}
    size = dict(zip(columns, widths[1:], strict=True))

    def total() -> int:
        return widths[0] + sum(2 + size[c] for c in keep)

    for column in DROP_ORDER_BAD if bad else DROP_ORDER:
        if total() <= width:
            break
        keep.discard(column)
    return keep


def _cell(info: TensorInfo, column: str) -> Text:
    s = info.stats
    if column == "shape":
        return Text(format_shape(info.shape))
    if column == "dtype":
        return Text(info.dtype if info.device == "cpu" else f"{info.dtype} {info.device}")
    if s is None:
        return Text("")
    if column in ("NaN", "Inf"):
        n = s.nan if column == "NaN" else s.inf
        return Text(str(n), style="bold red" if n else "dim")
    if column == "zero":
        return Text(f"{100 * s.zero_fraction:.0f}%")
    value = {"mean": s.mean, "std": s.std, "min": s.min, "max": s.max}[column]
    return Text(number(value, 3))


def unmeasured_line(rows: list[tuple[str, TensorInfo | str]]) -> Text | None:
    """Why a tensor's statistics cells are empty, when some are: it was recorded with its
    shape only (the program ran free through the call: a run to a failure, a session between
    stops). An empty tensor or one without data (meta) has no statistics to take."""
    names = [
        name
        for name, info in rows
        if isinstance(info, TensorInfo)
        and info.stats is None
        and info.device != "meta"
        and 0 not in info.shape
    ]
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return Text(
        f"no statistics for {shown}: recorded with shapes only (the program ran free "
        "through this call); stepping through a call records them",
        style="dim",
    )


class CallDetail:
    """Everything recorded about one call; `selected` picks the tensor whose histogram shows,
    `heat` is the heat map of a slice of it (or why there is none), when asked for."""

    def __init__(
        self,
        call: Call,
        selected: int | None = None,
        heat: HeatMap | str | None = None,
        hint: bool = False,
        plain: bool = False,
        unwinding: bool = False,
    ) -> None:
        self.call = call
        self.unwinding = unwinding  # an error raised inside it is on its way out
        self.selected = selected
        self.heat = heat
        self.hint = hint  # name the keys (in the debugger, not in the report)
        self.plain = plain  # the heat map in shades: the screen shows no colour (NO_COLOR)

    def height_key(self, width: int) -> tuple[object, ...]:
        """Everything the number of lines drawn at `width` depends on: two details with the
        same key take the same height (a UI can skip a layout pass). A running call has a
        placeholder output row, so a call's start and end usually draw alike."""
        call = self.call
        rows = call_tensors(call)
        selected = self.selected if self.selected is not None else default_row(rows)
        info = rows[selected][1] if selected is not None and selected < len(rows) else None
        histogram = isinstance(info, TensorInfo) and info.stats is not None
        heat = self.heat
        heat_key = len(heat.values) if isinstance(heat, HeatMap) else heat
        repr_lines = -(-len(call.module_repr) // max(width, 1))
        return (
            len(rows), repr_lines, call.call_site is not None, call.status == "error",
            call.error, gradient_line(call) is not None, units_line(call) is not None,
            histogram, heat_key, self.hint, unmeasured_line(rows) is not None,
        )  # fmt: skip

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        call = self.call
        head = Text.assemble((call.name, "bold"), "  ", (call.type, "cyan"))
        if call.params:
            head.append(f"  {count(call.params)} params", style="dim")
        if call.status != "running":
            head.append(f"  {call.duration_ms:.2f} ms", style="dim")
        parts: list[RenderableType] = [head, Text(call.module_repr, style="dim")]
        if call.call_site is not None:
            site = call.call_site
            parts.append(Text(f"called at {site.file}:{site.lineno}: {site.text.strip()}",
                              style="dim", overflow="ellipsis", no_wrap=True))  # fmt: skip
        rows = call_tensors(call)
        if self.unwinding:
            rows = [(n, UNWINDING if i == RUNNING else i) for n, i in rows]
        if rows:
            selected = self.selected if self.selected is not None else default_row(rows)
            parts.append(tensor_table(rows, selected, options.max_width))
            lines = (unmeasured_line(rows), gradient_line(call), units_line(call))
            extra = [line for line in lines if line]
            parts.extend(extra)
            info = rows[selected][1] if selected is not None and selected < len(rows) else None
            if isinstance(info, TensorInfo) and info.stats is not None:
                parts.append(Text(f"histogram of {rows[selected][0]}", style="bold"))  # type: ignore[index]
                parts.append(Histogram(info.stats))
            if self.heat is not None:
                parts.append(HeatMapView(self.heat, plain=self.plain))
            elif self.hint:
                parts.append(Text("t: next tensor · m: heat map of a slice", style="dim"))
        if call.status == "error" and call.error:
            parts.append(Text(call.error, style="bold red"))
        yield Group(*parts)


def default_row(rows: list[tuple[str, TensorInfo | str]]) -> int | None:
    """The first output tensor, else the first input tensor."""
    tensors = [i for i, (_, info) in enumerate(rows) if isinstance(info, TensorInfo)]
    outputs = [i for i in tensors if rows[i][0].startswith("out")]
    return outputs[0] if outputs else (tensors[0] if tensors else None)
