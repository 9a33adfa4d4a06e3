"""A headless debugger: step through a forward pass from code (tests, scripts, notebooks).

    d = Debugger(model, x, breakpoints=[Breakpoint("fc*")])
    p = d.start()            # Pause before the root call
    p = d.step()             # step into: the next event
    p = d.next()             # step over
    p = d.cont()             # to the next breakpoint, error, or the end (a Finished)
    d.trace                  # the whole record, once finished

The model runs in a worker thread, in the caller's torch context (grad mode, inference mode,
autocast, torch function modes, contextvars: inspector.engine.capture.context); each method
sends one command and waits for the next Pause or the Finished event. The debugger's hooks
record the worker thread's calls only: the caller's own calls of the same model pass through
untouched.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from inspector.engine.capture.context import CallerContext
from inspector.engine.capture.devices import rng_state, set_rng_state
from inspector.engine.capture.events import Stop
from inspector.engine.capture.gradients import BackwardRequestError
from inspector.engine.capture.recorder import Recorder
from inspector.engine.capture.values import ValueStore
from inspector.engine.control.breakpoints import Breakpoint, as_breakpoint
from inspector.engine.control.stepper import Pause, Stepper, stepping
from inspector.engine.records import Trace
from inspector.engine.trace import RunResult, check_module, findings_of, run_recorded

DEFAULT_TIMEOUT = 60.0
INTERRUPT_WAIT = 5.0  # after Ctrl+C in the caller: how long the model thread gets to unhook


@dataclass(frozen=True)
class Finished:
    """The pass ended: completed, failed (trace.error) or aborted by the debugger."""

    trace: Trace
    aborted: bool = False


Event = Pause | Finished


class Debugger:
    """Runs `model(*args, **kwargs)` in a worker thread under a Stepper."""

    def __init__(
        self,
        model: nn.Module,
        *args: Any,
        breakpoints: Iterable[Breakpoint | str] = (),
        loss_fn: Callable[..., Any] | None = None,
        target: Any = None,
        stats: bool = True,
        backward: bool = False,
        keep_values: int = 0,
        stop_at_start: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        on_event: Callable[[Event], None] | None = None,
        **kwargs: Any,
    ) -> None:
        check_module(model, "model")
        self.model, self.args, self.kwargs = model, args, kwargs
        self.loss_fn, self.target, self.stats = loss_fn, target, stats
        self.backward = backward  # then step on through the backward pass, call by call
        self.keep_values = keep_values  # bytes of tensor values kept for heat maps
        self.values: ValueStore | None = None
        self.breakpoints = [as_breakpoint(b) for b in breakpoints]
        self.stop_at_start = stop_at_start
        self.timeout = timeout
        self.events: queue.Queue[Event] = queue.Queue()
        # A front end (the TUI) takes each event itself; the methods below then do not wait.
        self._own_queue = on_event is None
        self.on_event: Callable[[Event], None] = on_event or self.events.put
        self.last: Event | None = None
        self.finished: Finished | None = None  # set by the model thread when the pass ends
        self._thread: threading.Thread | None = None
        self._stepper: Stepper | None = None
        self._rng = rng_state()  # the CPU and every accelerator started

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Event | None:
        """Start the pass; returns the first Pause (or Finished when nothing stops it).

        With `on_event`, returns None at once: the events go to that callback.
        """
        if self._thread is not None:
            raise RuntimeError("this Debugger already started; use restart()")
        recorder = Recorder(stats=self.stats, gradients=self.backward)
        if self.keep_values > 0:
            recorder.values = self.values = ValueStore(self.keep_values)
        self._stepper = stepping(
            recorder, self.on_event, self.breakpoints, stop_at_start=self.stop_at_start
        )
        context = CallerContext.capture()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, recorder), name="inspector-model", daemon=True
        )
        try:
            self._thread.start()
            if not self._own_queue:
                return None
            return self._wait()
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def _run(self, recorder: Recorder) -> None:
        """The model thread: always ends with a Finished event, whatever the pass raised."""
        aborted = False
        result = RunResult()
        recorder.thread = threading.get_ident()
        try:
            result = run_recorded(
                recorder, self.model, self.args, self.kwargs,
                loss_fn=self.loss_fn, target=self.target, backward=self.backward,
            )  # fmt: skip
        except Stop:
            aborted = True
        except BackwardRequestError as exc:  # shown as the pass's error, raised by debug()
            result.error = exc
        except BaseException as exc:  # KeyboardInterrupt in the forward: the caller gets it
            result.error = exc
        t = Trace(recorder.calls, output=result.output, loss=result.loss, error=result.error)
        try:
            recorder.settle()
            if not aborted and (result.error is None or isinstance(result.error, Exception)):
                t.findings = findings_of(t, recorder, None, result.in_backward)
        finally:
            recorder.release()
            self.finished = Finished(t, aborted)
            self.on_event(self.finished)

    def _wait(self) -> Event:
        try:
            event = self.events.get(timeout=self.timeout)
        except queue.Empty:
            raise TimeoutError(f"no pause or end within {self.timeout} s") from None
        self.last = event
        if isinstance(event, Finished) and isinstance(event.trace.error, KeyboardInterrupt):
            raise event.trace.error  # a Ctrl+C inside the forward reaches the caller
        return event

    def _interrupted(self) -> None:
        """Ctrl+C in the caller while the model thread runs: end the pass (it stops at its
        next module call) and give its hooks a moment to come off. Either way the stepper
        never blocks again, and the caller's own calls of the model are not recorded."""
        if self._stepper is not None:
            self._stepper.release(abort=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            # interrupted before it started (join refuses): it stops at its first call
            with contextlib.suppress(RuntimeError):
                self._thread.join(INTERRUPT_WAIT)

    def _send(self, kind: str, arg: str = "") -> Event:
        if isinstance(self.last, Finished) or self._stepper is None:
            raise RuntimeError("the pass is not paused (start it, or it has finished)")
        try:
            self._stepper.command(kind, arg)
            return self._wait()
        except KeyboardInterrupt:
            self._interrupted()
            raise

    # -- commands -------------------------------------------------------------------------

    def step(self) -> Event:
        """Step into: stop at the very next call start or end."""
        return self._send("into")

    def next(self) -> Event:
        """Step over: run the current call (and its children) without stopping."""
        return self._send("over")

    def out(self) -> Event:
        """Step out: run to the end of the enclosing call."""
        return self._send("out")

    def cont(self) -> Event:
        """Continue to the next breakpoint, error, or the end."""
        return self._send("continue")

    def run_to(self, pattern: str) -> Event:
        """Run until a call whose path matches `pattern` (glob) or whose type is `pattern`."""
        return self._send("to", pattern)

    def quit(self, *, abort: bool = False) -> Finished:
        """Stop debugging: the rest of the pass runs without pausing (abort: it stops now)."""
        if self._stepper is not None and not isinstance(self.last, Finished):
            self._stepper.release(abort=abort)
            while not isinstance(self.last, Finished):
                self._wait()
        assert isinstance(self.last, Finished)
        return self.last

    def restart(self) -> Event | None:
        """Abort this pass and run it again with the same inputs and the same RNG state."""
        self.quit(abort=True)
        if self._thread is not None:
            self._thread.join(self.timeout)
        set_rng_state(self._rng)
        self._thread, self._stepper, self.last, self.finished = None, None, None, None
        if self._own_queue:
            self.events = queue.Queue()
            self.on_event = self.events.put
        return self.start()  # None when a front end takes the events

    @property
    def stepper(self) -> Stepper | None:
        return self._stepper

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def trace(self) -> Trace:
        if not isinstance(self.last, Finished):
            raise RuntimeError("the pass has not finished")
        return self.last.trace
