"""Run a user's script unchanged as `__main__`, every module call hooked, under a Stepper.

`python -m inspector run train.py --lr 0.1` needs no change to train.py: global hooks see
every module call, roots are named after the script's variables (`model`, `criterion`), and
each new call of a root module starts a new pass. The script runs in a worker thread so that
the UI can own the main thread; its exit code and its traceback are kept for the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from inspector.engine.capture.events import Stop
from inspector.engine.capture.recorder import Recorder
from inspector.engine.control.breakpoints import Breakpoint, as_breakpoint
from inspector.engine.control.stepper import Pause, Stepper, stepping
from inspector.engine.distributed import launched_rank, rank_info
from inspector.engine.distributed.advice import post_root_inputs
from inspector.engine.records import Call

EXIT_QUIT = 130  # the debugger stopped the script before it finished (as Ctrl+C would)
EXIT_INTERRUPTED = 130  # an uncaught KeyboardInterrupt: the shell's code for SIGINT

_RUNNING: list[Stepper] = []  # the steppers of the scripts running now, innermost last


def running_script_stepper() -> Stepper | None:
    """The stepper of the script `run` is running now, if any: `set_trace()` and
    `breakpoint()` in that script stop in it rather than open a second debugger."""
    return _RUNNING[-1] if _RUNNING else None


@dataclass(frozen=True)
class ScriptFinished:
    """The script ended: its exit code, its uncaught exception's traceback text, the last pass."""

    exit_code: int
    traceback: str = ""
    calls: tuple[Call, ...] = ()
    passes: int = 0
    quit: bool = False


class ScriptRun:
    """One run of a script in a worker thread; events go to `on_event` (thread-safe)."""

    def __init__(
        self,
        path: str,
        argv: Iterable[str] = (),
        *,
        breakpoints: Iterable[Breakpoint | str] = (),
        post_mortem: bool = False,
        stats: bool = True,
        gradients: bool = False,
        on_event: Callable[[Pause | ScriptFinished], None],
    ) -> None:
        self.path = str(Path(path))
        self.argv = [self.path, *argv]
        self.breakpoints = [as_breakpoint(b) for b in breakpoints]
        self.post_mortem = post_mortem  # run free: only a failure (or a breakpoint) stops
        self.on_event = on_event
        self._explained: str = ""  # the diagnosis of the last failure the stepper stopped at
        # gradients: the script's own backward passes are recorded and can be stepped through
        self.recorder = Recorder(stats=stats, per_pass=True, gradients=gradients)
        # The script runs free most of the time: shapes only until a stop is near.
        self.stepper = stepping(
            self.recorder, self._event, self.breakpoints,
            stop_at_start=not self.breakpoints and not post_mortem, sessions=True,
        )  # fmt: skip
        if launched_rank() is not None:  # under torchrun: each pass's input on the store
            self.stepper.on_root = self._post_inputs
        self.finished: ScriptFinished | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._in_script = False
        self._thread = threading.Thread(target=self._run, name="inspector-script", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_here(self) -> ScriptFinished:
        """Run the script in the calling thread (no UI needs the main thread): its signal
        handlers work and Ctrl+C reaches it as it would without the inspector."""
        self._run()
        assert self.finished is not None
        return self.finished

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def running(self) -> bool:
        return self._thread.ident is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the run has ended, waiting up to `timeout`. Safe to interrupt: Ctrl+C in
        Thread.join can mark a live thread as stopped (CPython bpo-45274), an Event cannot."""
        return self._done.wait(timeout)

    def interrupt(self) -> None:
        """Ctrl+C for a script in the worker thread (signals reach only the main thread): a
        KeyboardInterrupt raised in the script at its next bytecode, as Python would raise it
        there; a script paused in the stepper is woken first and never stops again."""
        self.stepper.release()
        with self._lock:  # only while the script's own code runs, never in the cleanup
            ident = self._thread.ident
            if self._in_script and ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
                )

    def _run_script(self) -> None:
        with self._lock:
            self._in_script = True
        try:
            runpy.run_path(self.path, run_name="__main__")
        finally:
            # An interrupt sent before this lock is taken is raised by now (at the latest
            # when the lock is entered): none can land in _run's handlers below.
            with self._lock:
                self._in_script = False

    def _run(self) -> None:
        try:
            self._run_and_report()
        finally:
            self._done.set()

    def _run_and_report(self) -> None:
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = self.argv
        sys.path.insert(0, str(Path(self.path).resolve().parent))
        code, text, quit_ = 0, "", False
        saved_hook = sys.breakpointhook
        if saved_hook is sys.__breakpointhook__ and not os.environ.get("PYTHONBREAKPOINT"):
            # pdb cannot share the terminal with the debugger: a plain breakpoint() stops at
            # the next module call here. PYTHONBREAKPOINT, when set, still decides.
            sys.breakpointhook = self._breakpoint
        _RUNNING.append(self.stepper)
        self.recorder.attach_global()
        try:
            self._run_script()
        except SystemExit as exc:
            code = exit_code(exc.code)
        except Stop:
            code, quit_ = EXIT_QUIT, True
        except KeyboardInterrupt as exc:  # Ctrl+C, or raised by the script: Python's code
            code, text = EXIT_INTERRUPTED, self._traceback(exc)
        except BaseException as exc:  # the script's own failure: reported as Python would
            code, text = 1, self._traceback(exc)
            if _timed_out(exc):  # a desync: where this rank was, beside where the others were
                text += f"torch-inspector: when the collective timed out: {self.where()}\n"
            record_for_launcher(exc, text, self._explained)
        finally:
            self.recorder.detach()
            _RUNNING.remove(self.stepper)
            if sys.breakpointhook == self._breakpoint:  # unless the script set its own
                sys.breakpointhook = saved_hook
            sys.argv = saved_argv
            sys.path[:] = saved_path
        self.recorder.settle()
        self.finished = ScriptFinished(
            code, text, tuple(self.recorder.calls), self.recorder.pass_index + 1, quit_
        )
        self.recorder.release()
        self.on_event(self.finished)

    def _event(self, event: Pause | ScriptFinished) -> None:
        if isinstance(event, Pause) and event.reason == "error" and event.diagnosis is not None:
            self._explained = str(event.diagnosis)
        self.on_event(event)

    def _post_inputs(self, call: Call) -> None:
        if call.type != "DistributedDataParallel":  # the model's input, not a loss's
            return
        with contextlib.suppress(Exception):  # a look at the job never stops it
            post_root_inputs(call, self.recorder.pass_index)

    def where(self) -> str:
        """Where the script is now, in module terms: the hang view's line."""
        stepper, passes = self.stepper, self.recorder.pass_index + 1
        if stepper.paused is not None:
            pause = stepper.paused
            return f"paused at {pause.where} in the debugger ({pause.reason}), pass {passes}"
        last = stepper.last
        if last is None:
            return "no module called yet"
        call, phase = last
        what = f"{call.name} ({call.type})"
        if phase == "forward":
            return f"in the forward of {what}, pass {passes}"
        if phase == "backward":
            return f"in the backward pass, last at {what}, pass {passes}"
        return f"outside any module, last returned from {what}, pass {passes}"

    def _breakpoint(self, *args: object, **kwargs: object) -> None:
        self.stepper.stop_next()

    def _traceback(self, exc: BaseException) -> str:
        """The traceback Python would print for the script run alone: from its first frame in
        the script, without the runner's frames above it."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != self.path:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _timed_out(exc: BaseException) -> bool:
    """A collective that waited past the process group's timeout (gloo, NCCL): only with a
    process group (a socket or HTTP timeout in a plain script is no desync)."""
    if rank_info() is None:
        return False
    text = str(exc).lower()
    return "timed out" in text or (type(exc).__name__.startswith("Dist") and "timeout" in text)


def record_for_launcher(exc: BaseException, text: str, explained: str = "") -> None:
    """Under torchrun: the script's failure in this rank's error file, as torch's `@record`
    writes it, so that the launcher's root-cause report shows the real error, its traceback
    and the explanation (not "To enable traceback see ..."). A file the script's own
    `@record` already wrote is kept."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or os.path.exists(path):
        return
    callstack = text + (f"\ntorch-inspector:\n{explained}\n" if explained else "")
    data = {
        "message": {
            "message": f"{type(exc).__name__}: {exc}",
            "extraInfo": {"py_callstack": callstack, "timestamp": str(int(time.time()))},
        }
    }
    with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as fp:
        json.dump(data, fp)


@contextlib.contextmanager
def hang_view(run: ScriptRun, write: Callable[[str], object]) -> Iterator[None]:
    """While `run` runs, SIGUSR1 (`kill -USR1 PID`, or to every rank of a stuck torchrun job)
    writes where the script is: the module, forward or backward, the pass. A desync reads as
    "rank 0 in the backward pass, rank 1 in the forward of fc1". Only in the main thread, and
    only when the program has no SIGUSR1 handler of its own."""
    usr1 = getattr(signal, "SIGUSR1", None)
    if (
        usr1 is None
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(usr1) is not signal.SIG_DFL
    ):
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):  # the view must not break the program
            write(f"torch-inspector: {run.where()}\n")

    signal.signal(usr1, on_signal)
    try:
        yield
    finally:
        if signal.getsignal(usr1) is on_signal:  # unless the script set its own meanwhile
            signal.signal(usr1, signal.SIG_DFL)


def exit_code(code: object) -> int:
    """The process exit status for a SystemExit code, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
