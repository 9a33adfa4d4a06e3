"""Run a user's script unchanged as `__main__`, every module call hooked, under a Stepper.

`python -m inspector run train.py --lr 0.1` needs no change to train.py: global hooks see
every module call, roots are named after the script's variables (`model`, `criterion`), and
each new call of a root module starts a new pass. The script runs in a worker thread so that
the UI can own the main thread; its exit code and its traceback are kept for the caller.
"""

from __future__ import annotations

import runpy
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from inspector.engine.debugger import explain_recorded
from inspector.engine.recorder import Recorder, Stop
from inspector.engine.records import Call
from inspector.engine.stepper import Breakpoint, Pause, Stepper

EXIT_QUIT = 130  # the debugger stopped the script before it finished (as Ctrl+C would)


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
        self.breakpoints = [b if isinstance(b, Breakpoint) else Breakpoint(b) for b in breakpoints]
        self.post_mortem = post_mortem  # run free: only a failure (or a breakpoint) stops
        self.on_event = on_event
        # gradients: the script's own backward passes are recorded and can be stepped through
        self.recorder = Recorder(stats=stats, per_pass=True, gradients=gradients)
        self.stepper = Stepper(
            on_pause=self.on_event,
            breakpoints=self.breakpoints,
            stop_at_start=not self.breakpoints and not post_mortem,
            calls=self.recorder.calls,
            pass_source=lambda: self.recorder.pass_index,
        )
        self.stepper.explain = lambda call: explain_recorded(self.recorder, call)
        self.recorder.listener = self.stepper
        # The script runs free most of the time: shapes only until a stop is near.
        self.recorder.stats_when = self.stepper.wants_stats
        self.stepper.enrich = self.recorder.with_stats
        self.finished: ScriptFinished | None = None
        self._thread = threading.Thread(target=self._run, name="inspector-script", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = self.argv
        sys.path.insert(0, str(Path(self.path).resolve().parent))
        code, text, quit_ = 0, "", False
        self.recorder.attach_global()
        try:
            runpy.run_path(self.path, run_name="__main__")
        except SystemExit as exc:
            code = exit_code(exc.code)
        except Stop:
            code, quit_ = EXIT_QUIT, True
        except BaseException:  # the script's own failure: reported as Python would
            code, text = 1, traceback.format_exc()
        finally:
            self.recorder.detach()
            sys.argv = saved_argv
            sys.path[:] = saved_path
        self.recorder.settle()
        self.finished = ScriptFinished(
            code, text, tuple(self.recorder.calls), self.recorder.pass_index + 1, quit_
        )
        self.recorder.release()
        self.on_event(self.finished)


def exit_code(code: object) -> int:
    """The process exit status for a SystemExit code, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
