"""The module calls open in each thread, innermost last: a call's parent, its timing, and
what a KeyboardInterrupt left behind (torch runs no exit hook for a BaseException)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from inspector.engine.capture.hooks import runs_below


@dataclasses.dataclass(slots=True)
class OpenCall:
    seq: int
    key: object  # the module or function, compared by identity
    started: float
    exc_before: BaseException | None
    paused_before: float = 0.0  # the recorder's paused total when the call started
    substituted: BaseException | None = None  # dry runs: failed, but returned a stand-in
    redescribe: bool = False  # its parameter count was not final when it started (lazy)
    frame: Any = None  # the frame that runs the call: its children run below it
    unit: bool = False  # an activation module: its units are looked at when it returns


def drop_ended(stack: list[OpenCall], frame: Any) -> None:
    """Pop the open calls that ended without their exit hook (a BaseException unwound them:
    torch calls always-called hooks for an Exception only)."""
    while stack and not runs_below(frame, stack[-1].frame):
        stack.pop()


class OpenCalls:
    """Per thread, the calls started and not yet ended, innermost last."""

    def __init__(self) -> None:
        self._local = threading.local()

    def stack(self) -> list[OpenCall]:
        stack: list[OpenCall] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def depth(self) -> int:
        stack = getattr(self._local, "stack", None)
        return len(stack) if stack else 0

    def below(self, frame: Any) -> list[OpenCall]:
        """This thread's open calls for a call starting in `frame`: those a KeyboardInterrupt
        ended (their frames are gone from above it) are dropped first."""
        stack = self.stack()
        if stack and not runs_below(frame, stack[-1].frame):
            drop_ended(stack, frame)
        return stack

    def current(self) -> int | None:
        """The seq of the innermost call running in this thread."""
        stack = self.stack()
        return stack[-1].seq if stack else None

    def substitute(self, exc: BaseException) -> None:
        """The innermost running call failed with `exc` but returns a stand-in (dry runs)."""
        stack = self.stack()
        if stack:
            stack[-1].substituted = exc
