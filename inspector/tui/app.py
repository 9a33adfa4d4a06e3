"""The Textual app: a module tree, the selected call in detail, the problems, pdb's keys.

The app never touches a model or a tensor. Engine events arrive as messages (Paused,
PassFinished) holding frozen records; handlers set the app's reactive state and watchers
push it down to the widgets, which only send messages up. Commands go to a Controller.
Anything slow (heat maps, contributions) runs in a worker thread and comes back as a message.
Build it with `inspector.tui.factory.make_app`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.stepper import Pause
from inspector.engine.distributed import rank_label
from inspector.engine.records import Call, Diagnosis, TensorInfo
from inspector.render.detail import call_tensors, default_row
from inspector.tui import keys
from inspector.tui.calltree import CallTree
from inspector.tui.contrib import ContribPanel, ContribRequest
from inspector.tui.controller import NO_MODEL, Controller, Offline
from inspector.tui.detail import DetailPanel, DetailView
from inspector.tui.lookup import call_matches, output_out_of_range
from inspector.tui.messages import CloseRequest, Event, PassEnd, PassFinished, Paused
from inspector.tui.panels import ProblemsPanel, StatusLine
from inspector.tui.screens import AskScreen, BreakpointsScreen, HelpScreen
from inspector.tui.terminal import DEBUG, Frontend, SharedTerminal


class InspectorApp(SharedTerminal):
    """The debugger UI for one program (a model's pass, a script, a session)."""

    CSS_PATH = "inspector.tcss"
    TITLE = "torch-inspector"
    BINDINGS = keys.bindings("app")

    # The state. Records are compared by identity (always_update): by value, comparing two
    # records of one call walks all their tensors.
    pause: var[Pause | None] = var(None, always_update=True, init=False)
    finished: var[PassEnd | None] = var(None, always_update=True, init=False)
    calls: var[tuple[Call, ...]] = var((), always_update=True, init=False)
    pass_index: var[int] = var(0, init=False)
    selected: var[int | None] = var(None, always_update=True, init=False)  # the detail's call
    view: var[str] = var("detail", init=False)  # "detail" | "problems" | "contrib"
    findings: var[tuple[Diagnosis, ...]] = var((), init=False)
    status: var[tuple[str, str]] = var(("starting…", ""), init=False)  # text, style
    breakpoints: var[tuple[Breakpoint, ...]] = var((), init=False)
    tensor_row: var[int | None] = var(None, init=False)  # the detail's tensor; None: default
    heat_on: var[bool] = var(False, init=False)  # a heat map of the selected tensor
    slice_index: var[int] = var(0, init=False)  # which 2-D slice of it
    contrib: var[ContribRequest | str] = var("", always_update=True, init=False)  # or why not
    contrib_target: var[int | None] = var(None, init=False)  # the output; None: predicted

    def __init__(
        self, controller: Controller | None = None, *, title: str = "", frontend: Frontend = DEBUG
    ) -> None:
        super().__init__(frontend)
        self.controller: Controller = controller or Offline()
        self.sub_title = title
        self._heat_shape: tuple[int, ...] = ()  # leading dims of the heat map shown

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every key's action in the command palette too (ctrl+p), by its name."""
        yield from super().get_system_commands(screen)
        for title, help_text, action in keys.palette():
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            yield CallTree(id="tree")
            with ContentSwitcher(initial="detail", id="side"):
                with VerticalScroll(id="detail"):
                    yield DetailPanel(self.controller, id="detail-panel")
                with VerticalScroll(id="problems"):
                    yield ProblemsPanel(id="problems-panel")
                with VerticalScroll(id="contrib"):
                    yield ContribPanel(self.controller, id="contrib-panel")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(CallTree).focus()
        self.breakpoints = tuple(self.controller.breakpoints)
        self.controller.start(self.post_event)

    # -- events from the program's thread --------------------------------------------------

    def post_event(self, event: Event) -> None:
        """Thread-safe entry for engine events: only their values cross."""
        if isinstance(event, Pause):
            message: Paused | PassFinished = Paused(event)
        else:
            self.ended = True
            message = PassFinished(PassEnd.of(event))
        self.arrived.set()
        self.post_message(message)

    def on_paused(self, message: Paused) -> None:
        pause = message.pause
        self.pass_index = pause.pass_index
        self.pause = pause
        self.selected = pause.call.seq
        self.view = "detail"
        if pause.diagnosis is not None:
            self.findings = (pause.diagnosis,)
            self.view = "problems"

    def on_pass_finished(self, message: PassFinished) -> None:
        self.pause = None
        self.finished = message.end
        if self.frontend.exit_when_done and not self.findings:
            self.exit()  # the program is done and nothing needs looking at

    def on_close_request(self, message: CloseRequest) -> None:
        self.exit()

    # -- watchers: the state, pushed down ---------------------------------------------------

    def watch_pass_index(self) -> None:
        self.query_one(CallTree).start_pass()
        self.findings = ()

    def watch_pause(self, pause: Pause | None) -> None:
        if pause is None:
            return
        self.query_one(ProblemsPanel).running = True
        self.calls = pause.calls
        self.status = (
            f"paused {pause.where} · {pause.reason} · call {pause.call.seq + 1} · "
            f"{len(pause.calls)} recorded · pass {pause.pass_index + 1}",
            "bold red" if pause.reason == "error" else "bold",
        )

    def watch_finished(self, end: PassEnd | None) -> None:
        if end is None:
            return
        self.calls = end.calls
        self.findings = end.findings
        self.query_one(ProblemsPanel).running = False
        if end.aborted:
            self.status = ("stopped · press q to leave", "bold yellow")
        elif end.error is not None:
            where = end.findings[0].module if end.findings else ""
            self.status = (f"failed: {end.error} in {where or '(root)'} · "
                           f"{len(end.calls)} calls · q to quit", "bold red")  # fmt: skip
        else:
            warn = f" · {len(end.findings)} warning(s)" if end.findings else ""
            self.status = (f"finished · {len(end.calls)} calls{warn} · q to quit", "bold green")
        if end.findings:
            self.view = "problems"
            focus = end.findings[0].call
            if focus is not None and focus < len(end.calls):
                self.selected = focus

    def watch_calls(self, calls: tuple[Call, ...]) -> None:
        current = self.pause.call.seq if self.pause is not None else None
        self.query_one(CallTree).sync(calls, current)

    def watch_selected(self, old: int | None, seq: int | None) -> None:
        if seq is None or seq >= len(self.calls):
            return
        self.query_one(CallTree).select_seq(seq)
        if seq != old:  # another call: its default tensor, its first slice
            self.set_reactive(InspectorApp.tensor_row, None)
            self.set_reactive(InspectorApp.slice_index, 0)
        self._push_detail()

    def watch_view(self, view: str) -> None:
        self.query_one(ContentSwitcher).current = view

    def watch_findings(self, findings: tuple[Diagnosis, ...]) -> None:
        self.query_one(ProblemsPanel).findings = findings

    def watch_status(self, status: tuple[str, str]) -> None:
        text, style = status
        label = rank_label()  # under torchrun: which rank this screen is
        self.query_one(StatusLine).line = (f"{label.strip()} {text}" if label else text, style)

    def watch_breakpoints(self, breakpoints: tuple[Breakpoint, ...]) -> None:
        tree = self.query_one(CallTree)
        tree.breakpoints = {b.pattern for b in breakpoints if b.enabled and b.condition is None}
        tree.refresh_labels(self.calls)
        self.controller.set_breakpoints(breakpoints)

    def watch_tensor_row(self) -> None:
        self._push_detail()

    def watch_heat_on(self) -> None:
        self._push_detail()

    def watch_slice_index(self) -> None:
        self._push_detail()

    def watch_contrib(self, contrib: ContribRequest | str) -> None:
        panel = self.query_one(ContribPanel)
        if isinstance(contrib, str):
            panel.body = Text(contrib, style="dim")
        else:
            panel.request = contrib

    # -- the user's commands ---------------------------------------------------------------

    def action_step(self, kind: str) -> None:
        if self.pause is None:
            self.bell()
            self.notify("not paused", severity="warning", timeout=2)
            return
        if kind == "continue" and self.frontend.runs_free_suspended:
            if self.frontend.detach_when_free and not self.controller.stops_ahead():
                self.exit()  # nothing left to stop at: pdb detaches too
                return
            self._resumed("running…")
            self.run_free(partial(self.controller.command, "continue"), self.controller.interrupt)
            return
        self._resumed("running…")
        self.controller.command(kind)

    def _resumed(self, status: str) -> None:
        self.pause = None
        self.status = (status, "yellow")

    def action_go(self) -> None:
        def go(pattern: str | None) -> None:
            if pattern and self.pause is not None:
                self._resumed(f"running to {pattern}…")
                self.controller.command("to", pattern)

        self.push_screen(AskScreen("Run until a module starts (path glob or type):"), go)

    def action_toggle_breakpoint(self) -> None:
        call = self._selected_call()
        if call is None:
            return
        plain = [b for b in self.breakpoints if b.pattern == call.path and b.condition is None]
        if plain:
            self.breakpoints = tuple(b for b in self.breakpoints if b not in plain)
            self.notify(f"breakpoint removed: {call.path or '(root)'}", timeout=2)
        else:
            self.breakpoints = (*self.breakpoints, Breakpoint(call.path))
            self.notify(f"breakpoint at every call of {call.path or '(root)'}", timeout=2)

    def action_breakpoints(self) -> None:
        self.push_screen(BreakpointsScreen(self.breakpoints))

    def on_breakpoints_screen_changed(self, message: BreakpointsScreen.Changed) -> None:
        self.breakpoints = message.breakpoints

    def action_history(self, step: int) -> None:
        call = self._selected_call()
        if call is not None:
            self._show_call(min(max(call.seq + step, 0), len(self.calls) - 1))

    def action_find(self) -> None:
        def find(text: str | None) -> None:
            if not text:
                return
            for call in self.calls:
                if call_matches(call, text):
                    self.selected = call.seq
                    return
            self.notify(f"no recorded module matches {text!r}", severity="warning", timeout=3)

        self.push_screen(AskScreen("Find a recorded module (name, glob or type):"), find)

    def action_toggle_view(self) -> None:
        self.view = "problems" if self.view == "detail" else "detail"

    def action_pick_output(self) -> None:
        def pick(text: str | None) -> None:
            if text is None:
                return
            if text.strip() in ("", "predicted"):
                self.contrib_target = None
            elif text.strip().isdigit():
                wrong = output_out_of_range(self.calls, int(text))
                if wrong:
                    self.notify(wrong, severity="warning", timeout=4)
                    return
                self.contrib_target = int(text)
            else:
                self.notify(f"not an output index: {text!r}", severity="warning", timeout=3)
                return
            which = "the predicted class" if self.contrib_target is None else self.contrib_target
            self.notify(f"contributions now explain output {which}", timeout=2)

        self.push_screen(AskScreen("Explain which output (an index; empty: predicted class):"),
                         pick)  # fmt: skip

    def action_copy_path(self) -> None:
        call = self._selected_call()
        if call is not None:
            self.copy_to_clipboard(call.path)
            self.notify(f"copied {call.path or '(root)'}", timeout=2)

    def action_scroll_side(self, step: int) -> None:
        """Half a page of the side pane (detail, problems, contributions), the tree kept."""
        pane = self.query_one(f"#{self.view}", VerticalScroll)
        pane.scroll_relative(y=step * max(1, pane.size.height // 2), animate=False)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_interrupt(self) -> None:
        self.interrupted = True
        self.exit()

    # -- selection -------------------------------------------------------------------------

    def on_call_tree_highlighted(self, message: CallTree.Highlighted) -> None:
        if message.seq != self.selected:
            self._show_call(message.seq)

    def _show_call(self, seq: int) -> None:
        """The user picked a call: show it, also from the problems (the error box said
        nothing about the call picked)."""
        if self.view == "problems":
            self.view = "detail"
        self.selected = seq

    def _selected_call(self) -> Call | None:
        seq = self.selected
        return self.calls[seq] if seq is not None and seq < len(self.calls) else None

    def _push_detail(self) -> None:
        call = self._selected_call()
        if call is None:
            return
        rows = call_tensors(call)
        row = self.tensor_row
        if row is None or row >= len(rows):
            row = default_row(rows)
        pause = self.pause
        unwinding = pause is not None and pause.reason == "error" and call.status == "running"
        view = DetailView(call, self.calls, row, self.heat_on, self.slice_index, unwinding)
        self.query_one(DetailPanel).view = view

    # -- tensors, histograms and heat maps ------------------------------------------------

    def action_next_tensor(self) -> None:
        call = self._selected_call()
        if call is None:
            return
        rows = call_tensors(call)
        tensors = [i for i, (_, info) in enumerate(rows) if isinstance(info, TensorInfo)]
        if not tensors:
            return
        current = self.tensor_row if self.tensor_row is not None else default_row(rows)
        later = [i for i in tensors if current is None or i > current]
        self.set_reactive(InspectorApp.slice_index, 0)
        self.tensor_row = later[0] if later else tensors[0]

    def action_heat_map(self) -> None:
        self.view = "detail"
        self.heat_on = not self.heat_on

    def action_slice(self, step: int, outer: bool = False) -> None:
        if not self.heat_on or self.selected is None:
            self.notify("m shows the heat map first", timeout=2)
            return
        if outer and self._heat_shape:
            step *= self._heat_shape[-1]
        self.slice_index += step

    def on_detail_panel_heat_shown(self, message: DetailPanel.HeatShown) -> None:
        self._heat_shape = message.leading

    # -- contributions ----------------------------------------------------------------------

    def action_contributions(self, method: str) -> None:
        call = self._selected_call()
        self.view = "contrib"
        if call is None or not self.controller.explains:
            self.contrib = NO_MODEL
        elif self.finished is None:
            self.contrib = ("Contributions are computed on the finished pass: press c to "
                            "continue to the end, then x again.")  # fmt: skip
        elif self.finished.error is not None:
            self.contrib = "The pass failed: there is no output to explain."
        elif self.contrib_target is not None and output_out_of_range(
            self.calls, self.contrib_target
        ):
            why = output_out_of_range(self.calls, self.contrib_target)
            self.contrib = why + ": press o to pick another."
        else:
            self.contrib = ContribRequest(
                call.path, call.index, call.name, method, self.contrib_target
            )
