"""Messages from the model thread to the app: posted with App.post_message (thread-safe)."""

from __future__ import annotations

from textual.message import Message

from inspector.engine.debugger import Finished
from inspector.engine.stepper import Pause


class Paused(Message):
    """The model stopped; `pause` holds the call, the phase and every call so far."""

    def __init__(self, pause: Pause) -> None:
        super().__init__()
        self.pause = pause


class PassFinished(Message):
    """The pass ended (ok, failed or aborted); `finished.trace` has calls and findings."""

    def __init__(self, finished: Finished) -> None:
        super().__init__()
        self.finished = finished
