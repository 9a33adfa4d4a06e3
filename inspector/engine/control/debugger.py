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

Ctrl+C in the caller (headless, in the main thread, under Python's own SIGINT handler) ends
the pass wherever it lands, a Debugger method or the caller's own code between two of them:
while a pass lives, SIGINT first releases it (the model thread stops at its next module call
and takes its hooks off), then raises KeyboardInterrupt as Python's handler would (`_CtrlC`).
"""

from __future__ import annotations

import queue
import signal
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


class _CtrlC:
    """SIGINT while a headless pass lives: release every live pass, then KeyboardInterrupt.

    A KeyboardInterrupt can land anywhere in the caller's thread, and not every place can
    clean up after it: the caller's own code between two Debugger calls (the model thread
    stays paused with its hooks on, and no Debugger frame is there to release it), or the
    inside of threading's lock code (`Thread.start` waits on an Event: an interrupt after
    its Condition let go of the lock comes out as "RuntimeError: release unlocked lock", not
    as the KeyboardInterrupt an `except` would catch). So the release is done by the signal
    handler itself, before the interrupt is raised; it takes no lock (Stepper.release), and
    while the model thread starts (`hold`) the interrupt waits until `Thread.start` returned.

    Installed by the main thread only where Python's default handler is (a program's own
    handler decides itself what Ctrl+C means), and put back once the last pass ended or the
    first Ctrl+C came: nothing stays behind in the signal table.
    """

    def __init__(self) -> None:
        self._live: dict[int, Stepper] = {}
        self._holding = 0  # > 0: the main thread is in Thread.start; the interrupt waits
        self._held = False
        self._handler = self._handle  # one bound method: the signal table holds this object

    def enter(self, stepper: Stepper) -> None:
        """Guard `stepper`'s pass (called in the caller's thread before the pass starts)."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only: nothing can interrupt this caller
        current = signal.getsignal(signal.SIGINT)
        if current is not self._handler:
            if current is not signal.default_int_handler:
                return
            signal.signal(signal.SIGINT, self._handler)
        self._live[id(stepper)] = stepper

    def leave(self, stepper: Stepper) -> None:
        """`stepper`'s pass is over; the last one out puts Python's handler back."""
        self._live.pop(id(stepper), None)
        if not self._live:
            self._uninstall()

    def ended(self, stepper: Stepper) -> None:
        """`stepper`'s pass ended (called in its model thread): there is nothing left to
        release. A caller that never waits for the end (a Debugger dropped while its pass
        ran on) then does not keep the handler installed after every other pass has left:
        the next `leave` in the main thread finds none live and puts Python's back."""
        self._live.pop(id(stepper), None)

    def _uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # the handler, finding no pass, raises as Python's and takes itself off
        if signal.getsignal(signal.SIGINT) is self._handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handle(self, signum: int, frame: Any) -> None:
        live = list(self._live.values())
        self._live.clear()
        for stepper in live:
            stepper.release(abort=True)
        self._uninstall()
        if self._holding:
            self._held = True
            return
        signal.default_int_handler(signum, frame)

    def hold(self) -> bool:
        """Keep a Ctrl+C from being raised in this (main) thread until `unhold`: the passes
        are released at once all the same. False where this handler is not the one a
        Ctrl+C would run (no other handler's interrupt is ever held back)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGINT) is not self._handler:
            return False
        self._holding += 1
        return True

    def unhold(self, held: bool) -> None:
        """The end of a `hold` (that returned `held`): raise the Ctrl+C it kept back."""
        if not held:
            return
        self._holding -= 1
        if self._held and not self._holding:
            self._held = False
            raise KeyboardInterrupt


_CTRL_C = _CtrlC()


class _Ended:
    """The end of a model thread, waited for without its Thread object.

    The caller's thread keeps no reference to the model thread's Thread: that object is
    then freed in the model thread itself, and with it runs `threading._dangling`'s weakref
    callback, Python code where a Ctrl+C would be printed as "Exception ignored" and lost.
    """

    def __init__(self) -> None:
        self.done = False
        self._lock = threading.Lock()
        self._lock.acquire()  # held until the model thread ends

    def set(self) -> None:
        self.done = True
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        if self.done:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else timeout):
            self._lock.release()
        return self.done


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
        # A SimpleQueue: its get is one call into C, so a Ctrl+C while the caller waits raises
        # there cleanly (queue.Queue's Condition can turn it into a RuntimeError).
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        # A front end (the TUI) takes each event itself; the methods below then do not wait.
        self._own_queue = on_event is None
        self.on_event: Callable[[Event], None] = on_event or self.events.put
        self.last: Event | None = None
        self.finished: Finished | None = None  # set by the model thread when the pass ends
        self._ended: _Ended | None = None  # the model thread's end, once it was started
        self._worker: int | None = None  # the model thread's ident, once it runs
        self._stepper: Stepper | None = None
        self._rng = rng_state()  # the CPU and every accelerator started

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Event | None:
        """Start the pass; returns the first Pause (or Finished when nothing stops it).

        With `on_event`, returns None at once: the events go to that callback.
        """
        if self._ended is not None:
            raise RuntimeError("this Debugger already started; use restart()")
        recorder = Recorder(stats=self.stats, gradients=self.backward)
        if self.keep_values > 0:
            recorder.values = self.values = ValueStore(self.keep_values)
        self._stepper = stepping(
            recorder, self.on_event, self.breakpoints, stop_at_start=self.stop_at_start
        )
        context = CallerContext.capture()
        try:
            if self._own_queue:  # a front end (on_event) handles Ctrl+C itself
                _CTRL_C.enter(self._stepper)
            # Thread.start waits on an Event: threading's lock code, where an interrupt can
            # come out as a RuntimeError; it is raised once start returned
            held = _CTRL_C.hold()
            try:
                self._launch(context, recorder)
            except Exception:  # no thread to start: no pass to guard
                _CTRL_C.leave(self._stepper)
                raise
            finally:
                _CTRL_C.unhold(held)
            if not self._own_queue:
                return None
            return self._wait()
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def _launch(self, context: CallerContext, recorder: Recorder) -> None:
        """Start the model thread, keeping only its end (`_Ended`): its Thread object is
        dropped here, so it is freed in the model thread once that ends."""
        ended = _Ended()
        thread = threading.Thread(
            target=context.run, args=(self._run, recorder, ended, self._stepper),
            name="inspector-model", daemon=True,
        )  # fmt: skip
        thread.start()
        self._ended = ended

    def _run(self, recorder: Recorder, ended: _Ended, stepper: Stepper | None) -> None:
        """The model thread: always ends with a Finished event, whatever the pass raised."""
        try:
            self._pass(recorder)
        finally:
            if stepper is not None:
                _CTRL_C.ended(stepper)
            ended.set()

    def _pass(self, recorder: Recorder) -> None:
        aborted = False
        result = RunResult()
        self._worker = recorder.thread = threading.get_ident()
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
        if isinstance(event, Finished):
            if self._stepper is not None:
                _CTRL_C.leave(self._stepper)
            if isinstance(event.trace.error, KeyboardInterrupt):
                raise event.trace.error  # a Ctrl+C inside the forward reaches the caller
        return event

    def _interrupted(self) -> None:
        """Ctrl+C in the caller while the model thread runs: end the pass (it stops at its
        next module call) and give its hooks a moment to come off. Either way the stepper
        never blocks again, and the caller's own calls of the model are not recorded."""
        if self._stepper is not None:
            self._stepper.release(abort=True)
            _CTRL_C.leave(self._stepper)
        if self._ended is not None and self._worker != threading.get_ident():
            # not started yet: it stops at its first call
            self._ended.wait(INTERRUPT_WAIT)
        if self.finished is not None and not isinstance(self.last, Finished):
            self.last = self.finished  # its event lost to the interrupt: the pass is over

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
        self.join(self.timeout)
        set_rng_state(self._rng)
        self._ended, self._worker, self._stepper = None, None, None
        self.last, self.finished = None, None
        if self._own_queue:
            self.events = queue.SimpleQueue()
            self.on_event = self.events.put
        return self.start()  # None when a front end takes the events

    @property
    def stepper(self) -> Stepper | None:
        return self._stepper

    def join(self, timeout: float | None = None) -> None:
        """Wait for the model thread to end (its hooks are off by then)."""
        if self._ended is not None and self._worker != threading.get_ident():
            self._ended.wait(timeout)

    @property
    def trace(self) -> Trace:
        if not isinstance(self.last, Finished):
            raise RuntimeError("the pass has not finished")
        return self.last.trace
