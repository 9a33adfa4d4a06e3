"""Messages from the program's thread into the app; `App.post_message` is the thread-safe door.

Only values cross: frozen records, tuples, strings. A pass's output and exception stay in
the engine; the app gets their description (`PassEnd.error`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from inspector.engine.control.debugger import Finished
from inspector.engine.control.script import ScriptFinished
from inspector.engine.control.stepper import Pause
from inspector.engine.records import Call, Diagnosis

Event = Pause | Finished | ScriptFinished


@dataclass(frozen=True)
class PassEnd:
    """The pass ended: completed, failed or stopped from the debugger."""

    calls: tuple[Call, ...]
    findings: tuple[Diagnosis, ...] = ()
    error: str | None = None  # the exception's type name when the pass failed
    aborted: bool = False

    @classmethod
    def of(cls, event: Finished | ScriptFinished) -> PassEnd:
        if isinstance(event, ScriptFinished):
            return cls(tuple(event.calls), aborted=event.quit)
        t = event.trace
        error = None if t.error is None else type(t.error).__name__
        return cls(tuple(t.calls), tuple(t.findings), error, event.aborted)


class Paused(Message):
    """The model stopped; `pause` holds the call, the phase and every call so far."""

    def __init__(self, pause: Pause) -> None:
        super().__init__()
        self.pause = pause


class PassFinished(Message):
    """The pass ended (ok, failed or aborted): `end` has its calls and findings."""

    def __init__(self, end: PassEnd) -> None:
        super().__init__()
        self.end = end


class CloseRequest(Message):
    """The program is ending: close the app (sent from the program's thread)."""
