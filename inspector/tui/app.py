"""The Textual app: a module tree, the selected call in detail, the problems, pdb's keys.

The app never touches a model or a tensor. It receives frozen records as messages (Paused,
PassFinished) and sends commands to a controller (the Stepper, or a fake one in tests).
"""

from __future__ import annotations

import fnmatch
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Protocol

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from inspector.engine.debugger import Finished
from inspector.engine.records import Call, Diagnosis, TensorInfo
from inspector.engine.stepper import Breakpoint, Pause
from inspector.engine.values import HeatMap
from inspector.render.detail import call_tensors, default_row
from inspector.tui.calltree import CallTree
from inspector.tui.messages import PassFinished, Paused
from inspector.tui.panels import ContribPanel, DetailPanel, ProblemsPanel, StatusLine
from inspector.tui.screens import AskScreen, BreakpointsScreen, HelpScreen


class Controller(Protocol):
    """What the app drives: the Stepper's command side."""

    breakpoints: list[Breakpoint]

    def command(self, kind: str, arg: str = "") -> None: ...


class InspectorApp(App[None]):
    """The debugger UI for one model run."""

    CSS_PATH = "inspector.tcss"
    TITLE = "torch-inspector"
    # The footer shows pdb's keys, `?` and `q` first-class: at 80 columns everything else
    # would push `?` and `q` off the edge. `?` lists every key; ctrl+p finds any by name.
    BINDINGS = [
        Binding("s", "step('into')", "step"),
        Binding("n", "step('over')", "next"),
        Binding("r", "step('out')", "return"),
        Binding("c", "step('continue')", "continue"),
        Binding("g", "go", "go to", show=False),
        Binding("b", "toggle_breakpoint", "break"),
        Binding("B", "breakpoints", "breakpoints", show=False),
        Binding("left,left_square_bracket", "history(-1)", "back", show=False, priority=True),
        Binding("right,right_square_bracket", "history(1)", "fwd", show=False, priority=True),
        Binding("slash", "find", "find", show=False),
        Binding("p", "toggle_view", "problems", show=False),
        Binding("t", "next_tensor", "tensor", show=False),
        Binding("m", "heat_map", "heat map", show=False),
        Binding("comma", "slice(-1)", "prev slice", show=False),
        Binding("full_stop", "slice(1)", "next slice", show=False),
        Binding("less_than_sign", "slice(-1, True)", "prev outer", show=False),
        Binding("greater_than_sign", "slice(1, True)", "next outer", show=False),
        Binding("x", "contributions('grad_x_act')", "contrib", show=False),
        Binding("i", "contributions('integrated_gradients')", "integrated grad", show=False),
        Binding("o", "pick_output", "explain which output", show=False),
        Binding("y", "copy_path", "copy path", show=False),
        Binding("question_mark", "help", "keys"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "interrupt", "interrupt", show=False, priority=True),
    ]

    def __init__(
        self,
        controller: Controller | None = None,
        *,
        title: str = "",
        on_ready: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.on_ready = on_ready
        self.sub_title = title
        self.calls: Sequence[Call] = ()
        self.pause: Pause | None = None
        self.finished: Finished | None = None
        self.findings: list[Diagnosis] = []
        self.interrupted = False
        self.selected: int | None = None  # the call shown in the detail (tree cursor follows)
        self.output: list[tuple[str, bool]] = []  # what other threads printed while we drew
        self._output_lock = threading.Lock()
        self._ui_thread: int | None = None
        self.pass_index = 0
        self.contrib_target: int | None = None  # the output to explain; None: predicted class
        self.tensor_row: int | None = None  # the detail's tensor row; None: the first output
        self.heat_on = False  # show a heat map of the selected tensor
        self.slice_index = 0  # which 2-D slice of it
        self._heat_shape: tuple[int, ...] = ()  # leading dims of the heat map shown

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every key's action in the command palette too (ctrl+p), by its name."""
        yield from super().get_system_commands(screen)
        commands = (
            ("Step into", "s: stop at the very next call start or end", "step('into')"),
            ("Step over", "n: run the current call and its children", "step('over')"),
            ("Step out", "r: run to the end of the enclosing call", "step('out')"),
            ("Continue", "c: to a breakpoint, an error, or the end", "step('continue')"),
            ("Go to module", "g: run until a module matching a glob starts", "go"),
            ("Toggle breakpoint", "b: on the selected module", "toggle_breakpoint"),
            ("Breakpoints", "B: add with a condition, on/off, delete", "breakpoints"),
            ("Back", "←: the previous recorded call", "history(-1)"),
            ("Forward", "→: the next recorded call", "history(1)"),
            ("Find module", "/: a recorded module by name", "find"),
            ("Problems", "p: switch between the tensors and the problems", "toggle_view"),
            ("Next tensor", "t: the tensor whose histogram and heat map show", "next_tensor"),
            ("Heat map", "m: a 2-D slice of the selected tensor, on or off", "heat_map"),
            ("Contributions", "x: gradient x activation toward the output",
             "contributions('grad_x_act')"),
            ("Integrated gradients", "i: contributions with progress",
             "contributions('integrated_gradients')"),
            ("Explain which output", "o: an output index, or the predicted class",
             "pick_output"),
            ("Copy module path", "y: the selected module's path", "copy_path"),
        )  # fmt: skip
        for title, help_text, action in commands:
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine("starting…", id="status")
        with Horizontal(id="main"):
            yield CallTree(id="tree")
            with ContentSwitcher(initial="detail", id="side"):
                with VerticalScroll(id="detail"):
                    yield DetailPanel(id="detail-panel")
                with VerticalScroll(id="problems"):
                    yield ProblemsPanel(id="problems-panel")
                with VerticalScroll(id="contrib"):
                    yield ContribPanel(id="contrib-panel")
        yield Footer()

    def on_mount(self) -> None:
        self._ui_thread = threading.get_ident()
        self.query_one(CallTree).focus()
        self.query_one(ProblemsPanel).show([], running=True)
        if self.on_ready is not None:
            self.on_ready()

    # -- events from the model thread ------------------------------------------------------

    def post_event(self, event: Pause | Finished) -> None:
        """Thread-safe entry for engine events."""
        self.post_message(Paused(event) if isinstance(event, Pause) else PassFinished(event))

    def on_paused(self, message: Paused) -> None:
        pause = message.pause
        tree = self.query_one(CallTree)
        if pause.pass_index != self.pass_index:
            tree.start_pass()
            self.pass_index, self.findings = pause.pass_index, []
        self.pause, self.calls = pause, pause.calls
        tree.sync(pause.calls, pause.call.seq)
        tree.select_seq(pause.call.seq)
        self._show_detail(pause.call.seq, switch=True)
        style = "bold red" if pause.reason == "error" else "bold"
        if pause.diagnosis is not None:
            self.findings = [pause.diagnosis]
            self.query_one(ProblemsPanel).show(self.findings, running=True)
            self.query_one(ContentSwitcher).current = "problems"
        self._status(
            f"paused {pause.where} · {pause.reason} · call {pause.call.seq + 1} · "
            f"{len(pause.calls)} recorded · pass {pause.pass_index + 1}",
            style,
        )

    def on_pass_finished(self, message: PassFinished) -> None:
        finished = message.finished
        trace = finished.trace
        self.finished, self.pause, self.calls = finished, None, trace.calls
        self.findings = list(trace.findings)
        tree = self.query_one(CallTree)
        tree.sync(trace.calls, None)
        self.query_one(ProblemsPanel).show(self.findings, running=False)
        if finished.aborted:
            self._status("stopped · press q to leave", "bold yellow")
        elif trace.error is not None:
            where = self.findings[0].module if self.findings else ""
            self._status(
                f"failed: {type(trace.error).__name__} in {where or '(root)'} · "
                f"{len(trace.calls)} calls · q to quit", "bold red",
            )  # fmt: skip
        else:
            warn = f" · {len(self.findings)} warning(s)" if self.findings else ""
            self._status(f"finished · {len(trace.calls)} calls{warn} · q to quit", "bold green")
        if self.findings:
            self.query_one(ContentSwitcher).current = "problems"
            focus = self.findings[0].call
            if focus is not None and focus < len(self.calls):
                tree.select_seq(focus)
                self.query_one(DetailPanel).show(self.calls[focus])
                self.selected = focus

    # -- the user's commands ---------------------------------------------------------------

    def action_step(self, kind: str) -> None:
        if self.pause is None or self.controller is None:
            self.bell()
            self.notify("not paused", severity="warning", timeout=2)
            return
        self.pause = None
        self._status("running…", "yellow")
        self.controller.command(kind)

    def action_go(self) -> None:
        def go(pattern: str | None) -> None:
            if pattern and self.pause is not None and self.controller is not None:
                self.pause = None
                self._status(f"running to {pattern}…", "yellow")
                self.controller.command("to", pattern)

        self.push_screen(AskScreen("Run until a module starts (path glob or type):"), go)

    def action_toggle_breakpoint(self) -> None:
        call = self._selected()
        if call is None or self.controller is None:
            return
        tree = self.query_one(CallTree)
        bps = self.controller.breakpoints
        existing = [b for b in bps if b.pattern == call.path and b.condition is None]
        if existing:
            for b in existing:
                bps.remove(b)
            tree.breakpoints.discard(call.path)
            self.notify(f"breakpoint removed: {call.path or '(root)'}", timeout=2)
        else:
            bps.append(Breakpoint(call.path))
            tree.breakpoints.add(call.path)
            self.notify(f"breakpoint at every call of {call.path or '(root)'}", timeout=2)
        tree.refresh_labels(self.calls)

    def action_breakpoints(self) -> None:
        if self.controller is None:
            return

        def refresh(_: None) -> None:
            tree = self.query_one(CallTree)
            assert self.controller is not None
            tree.breakpoints = {
                b.pattern for b in self.controller.breakpoints if b.enabled and b.condition is None
            }
            tree.refresh_labels(self.calls)

        self.push_screen(BreakpointsScreen(self.controller.breakpoints), refresh)

    def action_history(self, step: int) -> None:
        call = self._selected()
        if call is None or not self.calls:
            return
        self._select(min(max(call.seq + step, 0), len(self.calls) - 1))

    def action_find(self) -> None:
        def find(text: str | None) -> None:
            if not text:
                return
            for call in self.calls:
                if _matches(call, text):
                    self._select(call.seq)
                    return
            self.notify(f"no recorded module matches {text!r}", severity="warning", timeout=3)

        self.push_screen(AskScreen("Find a recorded module (name, glob or type):"), find)

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "problems" if switcher.current == "detail" else "detail"

    def action_contributions(self, method: str) -> None:
        call = self._selected()
        compute = getattr(self.controller, "contributions", None)
        panel = self.query_one(ContribPanel)
        self.query_one(ContentSwitcher).current = "contrib"
        if call is None or compute is None:
            panel.show_text("Contributions need the model: run the inspector with debug().")
            return
        if self.finished is None:
            panel.show_text("Contributions are computed on the finished pass: press c to "
                            "continue to the end, then x again.")  # fmt: skip
            return
        if self.finished.trace.error is not None:
            panel.show_text("The pass failed: there is no output to explain.")
            return
        panel.show_text(f"computing {method} for {call.name}…", "yellow")

        def progress(done: int, total: int) -> None:
            self.call_from_thread(panel.show_text, f"{method}: step {done} of {total}", "yellow")

        def work() -> None:
            try:
                bars = compute(call.path, call.index, method, progress, self.contrib_target)
            except Exception as exc:  # a layer it cannot explain: say so, keep the app
                self.call_from_thread(panel.show_text, f"{type(exc).__name__}: {exc}", "red")
                return
            self.call_from_thread(panel.put, bars)

        self.run_worker(work, thread=True, exclusive=True, group="contributions")

    def action_pick_output(self) -> None:
        def pick(text: str | None) -> None:
            if text is None:
                return
            if text.strip() in ("", "predicted"):
                self.contrib_target = None
            elif text.strip().isdigit():
                self.contrib_target = int(text)
            else:
                self.notify(f"not an output index: {text!r}", severity="warning", timeout=3)
                return
            which = "the predicted class" if self.contrib_target is None else self.contrib_target
            self.notify(f"contributions now explain output {which}", timeout=2)

        self.push_screen(AskScreen("Explain which output (an index; empty: predicted class):"),
                         pick)  # fmt: skip

    def action_copy_path(self) -> None:
        call = self._selected()
        if call is not None:
            self.copy_to_clipboard(call.path)
            self.notify(f"copied {call.path or '(root)'}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_interrupt(self) -> None:
        self.interrupted = True
        self.exit()

    # -- the user's program's output ------------------------------------------------------

    def _print(self, text: str, stderr: bool = False) -> None:
        # Textual captures stdout while it draws; what the model or script prints from its
        # own thread is kept and written out later (flush_output), never dropped.
        if self._ui_thread is not None and threading.get_ident() != self._ui_thread:
            with self._output_lock:
                self.output.append((text, stderr))
            return
        super()._print(text, stderr)

    def flush_output(self) -> None:
        """Write what other threads printed while the app drew, in order."""
        with self._output_lock:
            pending, self.output = self.output, []
        for text, stderr in pending:
            stream = sys.__stderr__ if stderr else sys.__stdout__
            if stream is not None:
                stream.write(text)
        if sys.__stdout__ is not None:
            sys.__stdout__.flush()

    # -- selection -------------------------------------------------------------------------

    def on_call_tree_highlighted(self, message: CallTree.Highlighted) -> None:
        if message.seq != self.selected:
            self._show_detail(message.seq)

    def _selected(self) -> Call | None:
        seq = self.selected
        return self.calls[seq] if seq is not None and seq < len(self.calls) else None

    def _select(self, seq: int) -> None:
        self.query_one(CallTree).select_seq(seq)
        self._show_detail(seq)

    def _show_detail(self, seq: int, *, switch: bool = False) -> None:
        if seq < len(self.calls):
            if seq != self.selected:
                self.tensor_row, self.slice_index = None, 0
            self.selected = seq
            call = self.calls[seq]
            rows = call_tensors(call)
            row = self.tensor_row
            if row is None or row >= len(rows):
                row = default_row(rows)
            heat = self._heat(call, rows, row) if self.heat_on else None
            self.query_one(DetailPanel).show(call, row, heat)
            if switch:
                self.query_one(ContentSwitcher).current = "detail"

    def _heat(
        self, call: Call, rows: list[tuple[str, TensorInfo | str]], row: int | None
    ) -> HeatMap | str:
        compute = getattr(self.controller, "heatmap", None)
        if compute is None:
            return "values are kept only when the inspector runs the model (debug(), run)"
        if row is None or not isinstance(rows[row][1], TensorInfo):
            return "no tensor selected (t picks one)"
        name, info = rows[row]
        assert isinstance(info, TensorInfo)
        if name.startswith("grad "):
            return "gradients are kept as statistics only"
        position = None
        if name.startswith("out"):
            position = sum(
                1 for n, i in rows[:row] if n.startswith("out") and isinstance(i, TensorInfo)
            )
        heat = compute(self.calls, call, info, position, self.slice_index, f"{call.name} {name}")
        self._heat_shape = heat.leading if isinstance(heat, HeatMap) else ()
        return heat

    # -- tensors, histograms and heat maps ------------------------------------------------

    def action_next_tensor(self) -> None:
        call = self._selected()
        if call is None:
            return
        rows = call_tensors(call)
        tensors = [i for i, (_, info) in enumerate(rows) if isinstance(info, TensorInfo)]
        if not tensors:
            return
        current = self.tensor_row if self.tensor_row is not None else default_row(rows)
        later = [i for i in tensors if current is None or i > current]
        self.tensor_row = later[0] if later else tensors[0]
        self.slice_index = 0
        self._show_detail(call.seq)

    def action_heat_map(self) -> None:
        self.heat_on = not self.heat_on
        self.query_one(ContentSwitcher).current = "detail"
        if self.selected is not None:
            self._show_detail(self.selected)

    def action_slice(self, step: int, outer: bool = False) -> None:
        if not self.heat_on or self.selected is None:
            self.notify("m shows the heat map first", timeout=2)
            return
        if outer and self._heat_shape:
            step *= self._heat_shape[-1]
        self.slice_index += step
        self._show_detail(self.selected)

    def _status(self, text: str, style: str = "") -> None:
        self.query_one(StatusLine).show(text, style)


def _matches(call: Call, text: str) -> bool:
    return (
        call.path == text
        or fnmatch.fnmatchcase(call.path, text)
        or call.type == text
        or (text in call.path and not any(ch in text for ch in "*?["))
    )
