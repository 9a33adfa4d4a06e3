"""The module tree of the pass so far, built incrementally as calls arrive."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from inspector.engine.records import Call
from inspector.render.text import io_shapes
from inspector.render.trace_table import STATUS_MARK


def node_label(call: Call, *, current: bool, breakpoint: bool) -> Text:
    """`✓ conv1  Conv2d  (4, 3, 32, 32) → (4, 3, 32, 32)`."""
    mark, style = STATUS_MARK.get(call.status, ("?", ""))
    if current:
        mark, style = "▶", "bold yellow"
    name = call.path.rsplit(".", 1)[-1] if call.path else "(root)"
    if call.index:
        name += f" (call {call.index + 1})"
    text = Text.assemble((mark, style), " ")
    if breakpoint:
        text.append("● ", style="bold red")
    text.append(name, style="bold red" if call.status == "error" else "bold")
    text.append(f"  {call.type}", style="cyan")
    text.append(f"  {io_shapes(call)}", style="dim")
    return text


class CallTree(Tree[int]):
    """Tree nodes carry the call's seq; `sync(calls)` adds and relabels what changed."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("pass", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2
        self._by_seq: dict[int, TreeNode[int]] = {}
        self._shown: dict[int, Call] = {}
        self.current_seq: int | None = None
        self.breakpoints: set[str] = set()

    def sync(self, calls: Sequence[Call], current: int | None) -> None:
        """Bring the tree up to date with `calls`, marking `current`."""
        previous, self.current_seq = self.current_seq, current
        for call in calls[len(self._by_seq) :]:
            parent = (
                self._by_seq.get(call.parent, self.root) if call.parent is not None else self.root
            )
            node = parent.add(self._label(call), data=call.seq, expand=True)
            self._by_seq[call.seq] = node
            self._shown[call.seq] = call
        for seq in {previous, current} - {None}:
            self._shown.pop(seq, None)  # type: ignore[arg-type]
        for call in calls:
            if self._shown.get(call.seq) is not call:
                self._by_seq[call.seq].set_label(self._label(call))
                self._shown[call.seq] = call

    def start_pass(self) -> None:
        """Forget every node: a new pass starts."""
        self.clear()
        self._by_seq.clear()
        self._shown.clear()
        self.current_seq = None

    def refresh_labels(self, calls: Sequence[Call]) -> None:
        self._shown.clear()
        self.sync(calls, self.current_seq)

    def _label(self, call: Call) -> Text:
        return node_label(
            call, current=call.seq == self.current_seq, breakpoint=call.path in self.breakpoints
        )

    def node_for(self, seq: int) -> TreeNode[int] | None:
        return self._by_seq.get(seq)

    def select_seq(self, seq: int) -> None:
        node = self._by_seq.get(seq)
        if node is None:
            return
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        # a node added in this update has no line yet: move once the tree has laid it out
        self.call_after_refresh(self._move_to, node)

    def _move_to(self, node: TreeNode[int]) -> None:
        self.move_cursor(node)
        self.scroll_to_node(node)

    @property
    def selected_seq(self) -> int | None:
        node = self.cursor_node
        return node.data if node is not None else None
