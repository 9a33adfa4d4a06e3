"""Sessions: hooks that stay across the passes of a training loop until detached.

    with inspector.attach(model, break_on="fc2", on_pass=3) as session:
        for x, y in loader:
            loss = criterion(model(x), y)
            ...

Without a model, every module call in the process is hooked and roots are named after the
caller's variables. Each new call of a root module starts a new pass. The front end gets
each Pause in the thread running the model and must answer with a command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType

from torch import nn

from inspector.engine.capture.hooks import until_done
from inspector.engine.capture.recorder import Recorder
from inspector.engine.control.breakpoints import Breakpoint, as_breakpoint
from inspector.engine.control.stepper import Pause, stepping
from inspector.engine.records import Call


class Session:
    """A Recorder and a Stepper that live until `detach()`."""

    def __init__(
        self,
        front: Callable[[Pause], None],
        model: nn.Module | None = None,
        *,
        break_on: Iterable[Breakpoint | str] | Breakpoint | str = (),
        on_pass: int | None = None,
        stop_next: bool = False,
        stats: bool = True,
        gradients: bool = False,
    ) -> None:
        if isinstance(break_on, (str, Breakpoint)):
            break_on = [break_on]
        self.recorder = Recorder(stats=stats, per_pass=True, gradients=gradients)
        # A training loop runs free most of the time: shapes only until a stop is near.
        self.stepper = stepping(
            self.recorder, front, [as_breakpoint(b) for b in break_on],
            stop_at_start=stop_next, sessions=True,
        )  # fmt: skip
        self.stepper.pass_goal = on_pass
        self.model = model
        try:
            if model is not None:
                self.recorder.attach(model)
            else:
                self.recorder.attach_global()
        except BaseException:  # an interrupt while the hooks go on: none stays behind
            until_done(self.recorder.detach)
            raise

    @property
    def passes(self) -> int:
        """How many passes have started (a pass begins when a root module is called again)."""
        return self.recorder.pass_index + (1 if self.recorder.calls else 0)

    @property
    def calls(self) -> list[Call]:
        """The calls of the current pass."""
        self.recorder.settle()
        return self.recorder.calls

    @property
    def attached(self) -> bool:
        return self.recorder.attached

    def detach(self) -> None:
        """Remove every hook and never stop again. Safe to call twice, from any thread; a
        KeyboardInterrupt landing inside is raised once all of it is done."""
        # The retry is written out here, not called: an interrupt landing as a helper's
        # frame starts would skip its try and leave the hooks on.
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                self._detach()
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _detach(self) -> None:
        self.recorder.detach()  # the hooks first: nothing else matters as much
        self.stepper.release()
        if self.recorder.values is not None:
            self.recorder.values.clear()  # kept tensors go with the hooks

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        interrupted: KeyboardInterrupt | None = None
        while True:  # as in detach(), written out: no frame to enter before the try
            try:
                self._detach()
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
