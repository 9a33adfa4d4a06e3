"""The module tree of the pass so far: a virtual list of calls in pre-order, indented.

Calls arrive in pre-order, so a new call is always a new last row: nothing above it moves.
Only the visible lines are drawn, each from a small cache keyed by what it shows, so a step
repaints two or three lines and a 10,000-call pass opens as fast as a 10-call one.
Containers collapse with space or enter.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.engine.records import Call
from inspector.render.text import grad_text, io_shapes
from inspector.render.trace_table import STATUS_MARK
from inspector.tui import keys

CURSOR = Style(reverse=True)
GROW_ROWS = 32


def node_label(call: Call, *, current: bool, breakpoint: bool, collapsed: bool) -> Text:
    """`  ▾ ✓ conv1  Conv2d  (4, 3, 32, 32) → (4, 3, 32, 32)`."""
    mark, style = STATUS_MARK.get(call.status, ("?", ""))
    if current:
        mark, style = "▶", "bold yellow"
    name = call.path.rsplit(".", 1)[-1] if call.path else "(root)"
    if call.index:
        name += f" (call {call.index + 1})"
    text = Text("  " * call.depth)
    text.append("▸ " if collapsed else "  ", style="dim")
    text.append(mark, style=style)
    text.append(" ")
    if breakpoint:
        text.append("● ", style="bold red")
    text.append(name, style="bold red" if call.status == "error" else "bold")
    text.append(f"  {call.type}", style="cyan")
    text.append(f"  {io_shapes(call)}", style="dim")
    grad = grad_text(call)
    if grad:
        bad = grad in ("∇ NaN", "∇ Inf")
        text.append(f"  {grad}", style="bold red" if bad else "magenta")
    return text


class CallTree(ScrollView, can_focus=True, inherit_bindings=False):
    """Rows are call seqs; the cursor row is the selection. It says so with a message."""

    BINDINGS = keys.bindings("tree")

    class Highlighted(Message):
        """The user moved the cursor to call `seq`."""

        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.calls: Sequence[Call] = ()
        self.rows: list[int] = []  # visible call seqs, top to bottom
        self.row_of: dict[int, int] = {}
        self.cursor = 0
        self.current_seq: int | None = None
        self.breakpoints: set[str] = set()
        self.collapsed: set[int] = set()
        self._ends: list[int] = []  # last descendant seq of each call
        self._cache: dict[int, tuple[tuple[object, ...], Strip]] = {}
        self._blank: tuple[tuple[int, Style], Strip] | None = None
        self._width = 0
        self._line_style: Style | None = None  # the widget's style, once per repaint

    # -- data -----------------------------------------------------------------------------

    def sync(self, calls: Sequence[Call], current: int | None) -> None:
        """Bring the rows up to date with `calls` (a new pass when they start over)."""
        old = len(self.calls)
        changed = {s for s in (self.current_seq, current) if s is not None}
        if len(calls) < old or (old and calls[0].path != self.calls[0].path):
            self.start_pass()
            old = 0
        self.calls, self.current_seq = calls, current
        self._extend_ends(old)
        if self.collapsed:
            self._rebuild_rows()
        else:
            for call in calls[old:]:
                self.row_of[call.seq] = len(self.rows)
                self.rows.append(call.seq)
        changed.update(c.parent for c in calls[old:] if c.parent is not None)
        self._width = max(self._width, *(self._label_width(c) for c in calls[old:]), 0)
        self._resize()
        self._refresh_seqs(changed | {c.seq for c in calls[old:]} | self._finished_since(old))

    def _resize(self) -> None:
        """The scrollable size. A new size costs a layout of the whole screen (10-20 ms), so
        while a pass is running it changes seldom: rows that fit in the view take the whole
        view (nothing to scroll, and no layout per new call), and rows that overflow it grow
        in blocks, one layout per 32 new calls (the scroll range then ends in a few blank
        rows until the pass finishes)."""
        height = len(self.rows)
        if self.current_seq is not None:
            # the rows a view holds without a vertical scrollbar, a horizontal one shown or not
            view = self.size.height - self.styles.scrollbar_size_horizontal
            height = view if height <= view else -(-height // GROW_ROWS) * GROW_ROWS
        size = Size(self._width, height)
        if size != self.virtual_size:
            self.virtual_size = size

    def start_pass(self) -> None:
        """Forget every row: a new pass starts."""
        self.calls, self.rows, self.row_of, self._ends = (), [], {}, []
        self._cache.clear()
        self.collapsed.clear()
        self.cursor, self.current_seq, self._width = 0, None, 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def refresh_labels(self, calls: Sequence[Call]) -> None:
        self._cache.clear()
        self.calls = calls
        self.refresh()

    def _finished_since(self, old: int) -> set[int]:
        # Calls that ended since the last sync changed their record: redraw their line.
        return {
            c.seq for c in self.calls[:old] if self._cache.get(c.seq, ((None,),))[0][0] is not c
        }

    def _extend_ends(self, old: int) -> None:
        """The last descendant of every call, for the calls from `old` on and their
        ancestors. In pre-order a subtree is the run of calls from its root to its end: a
        pass from the last call back gives each parent the end of its last child."""
        calls, ends = self.calls, self._ends
        count = len(calls)
        del ends[old:]
        ends.extend(range(old, count))
        for seq in range(count - 1, old - 1, -1):
            parent = calls[seq].parent
            if parent is not None and ends[parent] < ends[seq]:
                if parent >= old:
                    ends[parent] = ends[seq]
                else:  # an ancestor recorded before: its own ancestors end there too
                    while parent is not None and ends[parent] < ends[seq]:
                        ends[parent] = ends[seq]
                        parent = calls[parent].parent

    def _rebuild_rows(self) -> None:
        self.rows, self.row_of = [], {}
        seq = 0
        while seq < len(self.calls):
            self.row_of[seq] = len(self.rows)
            self.rows.append(seq)
            seq = self._ends[seq] + 1 if seq in self.collapsed else seq + 1
        self.cursor = min(self.cursor, max(len(self.rows) - 1, 0))
        self._resize()
        self._cache.clear()
        self.refresh()

    def _label_width(self, call: Call) -> int:
        return 2 * call.depth + len(call.path) + len(call.type) + 64

    # -- selection ------------------------------------------------------------------------

    @property
    def selected_seq(self) -> int | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def has(self, seq: int) -> bool:
        return seq < len(self.calls)

    def select_seq(self, seq: int) -> None:
        """Put the cursor on call `seq`, unfolding what hides it, and scroll it into view."""
        if seq >= len(self.calls):
            return
        hidden = [p for p in self._ancestors(seq) if p in self.collapsed]
        if hidden:
            self.collapsed.difference_update(hidden)
            self._rebuild_rows()
        self._move(self.row_of[seq])

    def _ancestors(self, seq: int) -> list[int]:
        found, parent = [], self.calls[seq].parent
        while parent is not None:
            found.append(parent)
            parent = self.calls[parent].parent
        return found

    def _move(self, row: int) -> None:
        if not self.rows:
            return
        row = max(0, min(row, len(self.rows) - 1))
        old, self.cursor = self.cursor, row
        self._refresh_rows({old, row})
        self.scroll_to_region(Region(0, row, 1, 1), animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        self._move(self.cursor + step)
        self._announce()

    def action_page(self, direction: int) -> None:
        self._move(self.cursor + direction * max(self.size.height - 1, 1))
        self._announce()

    def action_jump(self, row: int) -> None:
        self._move(row if row >= 0 else len(self.rows) - 1)
        self._announce()

    def action_fold(self) -> None:
        seq = self.selected_seq
        if seq is None or self._ends[seq] == seq:
            return
        self.collapsed.symmetric_difference_update({seq})
        self._rebuild_rows()
        self._move(self.row_of[seq])

    def _announce(self) -> None:
        seq = self.selected_seq
        if seq is not None:
            self.post_message(self.Highlighted(seq))

    def on_click(self, event: events.Click) -> None:
        self._move(int(self.scroll_offset.y + event.y))
        self._announce()

    # -- drawing --------------------------------------------------------------------------

    def _refresh_seqs(self, seqs: set[int]) -> None:
        self._refresh_rows({self.row_of[s] for s in seqs if s in self.row_of})

    def _refresh_rows(self, rows: set[int]) -> None:
        top, (width, height) = self.scroll_offset.y, self.size  # each read costs microseconds
        visible = [row for row in rows if top <= row < top + height]
        if len(visible) > height // 2:  # most of the view: one refresh, not one per line
            self.refresh()
            return
        for row in visible:
            self.refresh(Region(0, row - top, width, 1))

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's style costs ~0.1 ms to compute: once per repaint, not once per line.
        self._line_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.size.width
        style = self._line_style or self.rich_style
        if row >= len(self.rows):
            blank = self._blank
            if blank is None or blank[0] != (width, style):
                blank = self._blank = ((width, style), Strip.blank(width, style))
            return blank[1]
        seq = self.rows[row]
        call = self.calls[seq]
        key = (seq == self.current_seq, call.path in self.breakpoints,
               seq in self.collapsed, row == self.cursor and self.has_focus, width,
               self.scroll_offset.x)  # fmt: skip
        cached = self._cache.get(seq)
        # the record by identity: comparing frozen Calls by value walks all their tensors
        if cached is not None and cached[0][0] is call and cached[0][1] == key:
            return cached[1]
        text = node_label(call, current=key[0], breakpoint=key[1], collapsed=key[2])
        strip = _cut(Strip(list(text.render(self.app.console))), self.scroll_offset.x, width)
        strip = strip.extend_cell_length(width).apply_style(style)
        if row == self.cursor:
            strip = Strip([Segment(s.text, (s.style or Style()) + CURSOR) for s in strip])
        self._cache[seq] = ((call, key), strip)
        return strip

    def on_focus(self) -> None:
        self._refresh_rows({self.cursor})

    def on_blur(self) -> None:
        self._refresh_rows({self.cursor})


def _cut(line: Strip, start: int, width: int) -> Strip:
    """Cells `start` to `start + width` of `line`; a line cut on the right ends in "…", so a
    value that does not fit never reads as a shorter one (`∇ 0.12` is not `∇ 0`)."""
    if line.cell_length <= start + width or width < 2:
        return line.crop(start, start + width)
    kept = line.crop(start, start + width - 1)
    return Strip([*kept, Segment("…", Style(dim=True))])
