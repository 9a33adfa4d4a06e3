"""What the app asks of the program it debugs: the Controller protocol and its implementations.

The app never touches a model, a tensor or the stepper's state. It sends commands (step,
continue, the new list of breakpoints) and asks for values (a heat map, contributions) from
its worker threads. Events come back the other way, through an EventRelay, as messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import nn

from inspector.engine.capture.recorder import Recorder
from inspector.engine.capture.values import HeatMap, ValueStore, value_key
from inspector.engine.contrib import contributions
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.debugger import Debugger
from inspector.engine.control.stepper import Stepper
from inspector.engine.records import Call, TensorInfo
from inspector.render import ContributionBars
from inspector.tui.messages import Event

HEAT_ROWS, HEAT_COLS = 24, 64  # cells when the panel's size is not known
CONTRIB_TOP = 15
NO_VALUES = "values are kept only when the inspector runs the model (debug(), run)"
NO_MODEL = "Contributions need the model: run the inspector with debug()."

Post = Callable[[Event], object]
Progress = Callable[[int, int], None]


class Controller(Protocol):
    """The program behind the app. Commands return at once; the values (heat maps,
    contributions) may take a while and are asked for from a worker thread."""

    @property
    def breakpoints(self) -> Sequence[Breakpoint]:
        """The breakpoints the program starts with."""
        ...

    @property
    def explains(self) -> bool:
        """Whether contributions can be computed (the model and its inputs are at hand)."""
        ...

    def start(self, post: Post) -> None:
        """The app is up: run the program, its events to `post` (thread-safe)."""

    def command(self, kind: str, arg: str = "") -> None:
        """Resume a paused program: into, over, out, continue, to (arg: a glob)."""

    def set_breakpoints(self, breakpoints: Sequence[Breakpoint]) -> None:
        """From now on, stop at these (the whole list: added, switched, deleted)."""

    def stops_ahead(self) -> bool:
        """Whether running free could stop again (a breakpoint, a pass to stop at)."""
        ...

    def interrupt(self) -> None:
        """Ctrl+C while the program runs free: stop it as Ctrl+C alone would."""

    def heatmap(
        self, calls: Sequence[Call], call: Call, info: TensorInfo, output_position: int | None,
        index: int, label: str, size: tuple[int, int] = (HEAT_ROWS, HEAT_COLS),
    ) -> HeatMap | str:  # fmt: skip
        """Slice `index` of a kept tensor, averaged down to at most `size` (rows, columns of
        cells) to fit the detail panel, or why there is none."""
        ...

    def contributions(
        self, layer: str, call_index: int, method: str, progress: Progress, target: int | None
    ) -> ContributionBars | str:
        """The top units of `layer` toward the output, or why there are none."""
        ...


class Offline:
    """No program behind the app (snapshots, benchmarks): commands go nowhere."""

    breakpoints: Sequence[Breakpoint] = ()
    explains = False

    def start(self, post: Post) -> None:
        pass

    def command(self, kind: str, arg: str = "") -> None:
        pass

    def set_breakpoints(self, breakpoints: Sequence[Breakpoint]) -> None:
        self.breakpoints = tuple(breakpoints)

    def stops_ahead(self) -> bool:
        return True

    def interrupt(self) -> None:
        pass

    def heatmap(
        self, calls: Sequence[Call], call: Call, info: TensorInfo, output_position: int | None,
        index: int, label: str, size: tuple[int, int] = (HEAT_ROWS, HEAT_COLS),
    ) -> HeatMap | str:  # fmt: skip
        return NO_VALUES

    def contributions(
        self, layer: str, call_index: int, method: str, progress: Progress, target: int | None
    ) -> ContributionBars | str:
        return NO_MODEL


class EventRelay:
    """The engine's events on their way to the app: held until the app is up, then posted in
    order. The engine calls it from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[Event] = []
        self._post: Post | None = None
        self._arrived = threading.Event()

    def __call__(self, event: Event) -> None:
        with self._lock:  # posting is quick and thread-safe: under the lock, order is kept
            if self._post is None:
                self._held.append(event)
                self._arrived.set()
            else:
                self._post(event)

    def connect(self, post: Post) -> None:
        with self._lock:
            held, self._held, self._post = self._held, [], post
            for event in held:
                post(event)

    def first(self) -> Event:
        """Wait for the first event (before the app is up), in short waits: Ctrl+C lands."""
        while not self._arrived.wait(0.1):
            pass
        with self._lock:
            return self._held[0]


def _heatmap(
    store: ValueStore | None, calls: Sequence[Call], call: Call, info: TensorInfo,
    output_position: int | None, index: int, label: str,
    size: tuple[int, int] = (HEAT_ROWS, HEAT_COLS),
) -> HeatMap | str:  # fmt: skip
    if store is None:
        return "values are not kept in this run"
    key = value_key(calls, call, info, output_position=output_position)
    if isinstance(key, str):
        return key
    return store.heatmap(*key, index, rows=size[0], cols=size[1], label=label)


class StepperControl(Offline):
    """A stepper whose recorder keeps values: `run SCRIPT`, set_trace() and attach()."""

    def __init__(
        self,
        stepper: Stepper,
        recorder: Recorder,
        events: EventRelay,
        *,
        start: Callable[[], object] | None = None,
        interrupt: Callable[[], object] | None = None,
    ) -> None:
        self.stepper, self.recorder, self.events = stepper, recorder, events
        self._start, self._interrupt = start, interrupt
        self.breakpoints = tuple(stepper.breakpoints)

    def start(self, post: Post) -> None:
        self.events.connect(post)
        if self._start is not None:
            self._start()

    def command(self, kind: str, arg: str = "") -> None:
        self.stepper.command(kind, arg)

    def set_breakpoints(self, breakpoints: Sequence[Breakpoint]) -> None:
        # A new list, never an edit of the one the model thread may be reading right now.
        self.breakpoints = tuple(breakpoints)
        self.stepper.breakpoints = list(breakpoints)

    def stops_ahead(self) -> bool:
        return bool(self.stepper.breakpoints) or self.stepper.pass_goal is not None

    def interrupt(self) -> None:
        if self._interrupt is not None:
            self._interrupt()
        else:
            self.stepper.command("interrupt")

    def heatmap(
        self, calls: Sequence[Call], call: Call, info: TensorInfo, output_position: int | None,
        index: int, label: str, size: tuple[int, int] = (HEAT_ROWS, HEAT_COLS),
    ) -> HeatMap | str:  # fmt: skip
        return _heatmap(self.recorder.values, calls, call, info, output_position, index, label,
                        size)  # fmt: skip


class DebuggerControl(Offline):
    """A Debugger (debug()): the model and its inputs are at hand, so contributions too."""

    explains = True

    def __init__(self, debugger: Debugger, events: EventRelay) -> None:
        self.debugger, self.events = debugger, events
        self.breakpoints = tuple(debugger.breakpoints)

    @classmethod
    def of(cls, model: nn.Module, *args: Any, **options: Any) -> DebuggerControl:
        """A Debugger over `model(*args)` (options: Debugger's) whose events go to the app."""
        events = EventRelay()
        return cls(Debugger(model, *args, on_event=events, **options), events)

    def start(self, post: Post) -> None:
        self.events.connect(post)
        self.debugger.start()

    def command(self, kind: str, arg: str = "") -> None:
        stepper = self.debugger.stepper
        if stepper is not None:
            stepper.command(kind, arg)

    def set_breakpoints(self, breakpoints: Sequence[Breakpoint]) -> None:
        # A new list, never an edit of the one the model thread may be reading right now.
        self.breakpoints = tuple(breakpoints)
        self.debugger.breakpoints = list(breakpoints)
        stepper = self.debugger.stepper
        if stepper is not None:
            stepper.breakpoints = self.debugger.breakpoints

    def stops_ahead(self) -> bool:
        return True  # an error stops the pass too

    def interrupt(self) -> None:
        stepper = self.debugger.stepper
        if stepper is not None:
            stepper.release(abort=True)

    def heatmap(
        self, calls: Sequence[Call], call: Call, info: TensorInfo, output_position: int | None,
        index: int, label: str, size: tuple[int, int] = (HEAT_ROWS, HEAT_COLS),
    ) -> HeatMap | str:  # fmt: skip
        return _heatmap(self.debugger.values, calls, call, info, output_position, index, label,
                        size)  # fmt: skip

    def contributions(
        self, layer: str, call_index: int, method: str, progress: Progress, target: int | None
    ) -> ContributionBars | str:
        """Computed on the finished pass, in the caller's (worker) thread: the top units."""
        d = self.debugger
        c = contributions(d.model, *d.args, layer=layer, call_index=call_index, method=method,
                          target=target, steps=32, progress=progress, **d.kwargs)  # fmt: skip
        terms = [(t.index[0], t.value, t.share) for t in c.top(CONTRIB_TOP)]
        note = f"completeness gap {c.gap:.2%}" if c.gap is not None else ""
        words = {"grad_x_act": "gradient x activation", "linear": "exact linear terms"}
        how = words.get(method, method.replace("_", " "))
        title = f"{layer or '(root)'} → {c.target} ({how}, sample 0)"
        return ContributionBars(title, terms, note)
