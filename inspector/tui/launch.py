"""Open the TUI on a model run: the app in the main thread, the model in a worker.

When the app exits (q, Ctrl+C, a crash), every blocked model thread is released: a quit
never leaves a script hung. `q` lets the rest of the pass run without stopping; Ctrl+C ends
it and reaches the caller as KeyboardInterrupt, after the hooks are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from inspector.engine.contrib import contributions
from inspector.engine.debugger import Debugger, Finished
from inspector.engine.recorder import Recorder
from inspector.engine.records import Call, TensorInfo
from inspector.engine.stepper import Breakpoint, Stepper
from inspector.engine.values import DEFAULT_BUDGET, HeatMap, ValueStore, value_key
from inspector.render import ContributionBars
from inspector.tui.app import InspectorApp

JOIN_TIMEOUT = 600.0
HEAT_ROWS, HEAT_COLS = 24, 64  # cells: two rows of cells per line of text


class _KeptValues:
    """Heat maps of the tensors a run kept: the part of a controller that reads values."""

    def _store(self) -> ValueStore | None:
        raise NotImplementedError

    def heatmap(
        self,
        calls: Sequence[Call],
        call: Call,
        info: TensorInfo,
        output_position: int | None,
        index: int,
        label: str,
    ) -> HeatMap | str:
        """A slice of a tensor the run kept (cells sized for the detail panel), or why not."""
        store = self._store()
        if store is None:
            return "values are not kept in this run"
        key = value_key(calls, call, info, output_position=output_position)
        if isinstance(key, str):
            return key
        return store.heatmap(*key, index, rows=HEAT_ROWS, cols=HEAT_COLS, label=label)


class StepperControl(_KeptValues):
    """The app's controller over a stepper whose recorder keeps values (run, set_trace)."""

    def __init__(self, stepper: Stepper, recorder: Recorder) -> None:
        self.stepper = stepper
        self.recorder = recorder
        self.breakpoints = stepper.breakpoints

    def command(self, kind: str, arg: str = "") -> None:
        self.stepper.command(kind, arg)

    def _store(self) -> ValueStore | None:
        return self.recorder.values


class _DebuggerControl(_KeptValues):
    """The app's controller: forwards to the Debugger's stepper once it exists."""

    def __init__(self, debugger: Debugger) -> None:
        self.debugger = debugger
        self.breakpoints = debugger.breakpoints

    def command(self, kind: str, arg: str = "") -> None:
        stepper = self.debugger.stepper
        if stepper is not None:
            stepper.command(kind, arg)

    def _store(self) -> ValueStore | None:
        return self.debugger.values

    def contributions(
        self,
        layer: str,
        call_index: int,
        method: str,
        progress: Callable[[int, int], None],
        target: int | None = None,
    ) -> ContributionBars:
        """Computed on the finished pass, in the caller's (worker) thread: top-15 units."""
        d = self.debugger
        c = contributions(d.model, *d.args, layer=layer, call_index=call_index, method=method,
                          target=target, steps=32, progress=progress, **d.kwargs)  # fmt: skip
        terms = [(t.index[0], t.value, t.share) for t in c.top(15)]
        note = f"completeness gap {c.gap:.2%}" if c.gap is not None else ""
        words = {"grad_x_act": "gradient x activation", "linear": "exact linear terms"}
        how = words.get(method, method.replace("_", " "))
        title = f"{layer or '(root)'} → {c.target} ({how}, sample 0)"
        return ContributionBars(title, terms, note)


def run_app(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    breakpoints: Iterable[Breakpoint | str] = (),
    backward: bool = False,
) -> Finished:
    """Run the pass under the TUI; returns when the user quits and the pass has ended."""
    app = InspectorApp(title=type(model).__name__)
    debugger = Debugger(
        model, *args, breakpoints=breakpoints, loss_fn=loss_fn, target=target,
        backward=backward, keep_values=DEFAULT_BUDGET, on_event=app.post_event, **kwargs,
    )  # fmt: skip
    app.controller = _DebuggerControl(debugger)
    app.on_ready = debugger.start
    try:
        app.run()
    finally:
        stepper = debugger.stepper
        if stepper is not None:
            stepper.release(abort=app.interrupted)
        debugger.join(JOIN_TIMEOUT)
        app.flush_output()
    if app.interrupted:
        raise KeyboardInterrupt
    if debugger.finished is None:
        raise RuntimeError("the model thread did not finish")
    return debugger.finished
