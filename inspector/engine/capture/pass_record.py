"""The record of the pass being recorded: its calls, and the only code that writes them.

The recorder adds a call when it starts and sets it when it ends; the gradient recorder and
the statistics that arrive late from an accelerator replace it with more filled in. All of
them go through `PassRecord`, so what a call's record holds at any moment has one author.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

from inspector.engine.records import Call, Units, positional_builder

new_call = positional_builder(Call)  # Call(*fields), in 40% of its time: two per module call


def ended(
    call: Call, outputs: Any, status: str, error: str | None, ms: float, units: Units | None = None
) -> Call:
    """`call` with its end filled in (dataclasses.replace costs 4x more on this hot path)."""
    return new_call(
        call.seq, call.path, call.index, call.type, call.depth, call.parent, call.inputs,
        call.kwargs, outputs, status, error, call.module_repr, call.params, ms, call.call_site,
        units, call.grad,
    )  # fmt: skip


@dataclasses.dataclass
class Failure:
    """A call that raised: the live pieces a diagnosis needs, dropped after it ran."""

    seq: int
    module: nn.Module | Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: BaseException


class PassRecord:
    """The calls of one pass, in the order they started, and what a diagnosis needs of them.

    Attributes:
        calls: the records, by seq (read them; write through `add`, `set` and `update`).
        modules: a weak reference to the live module (or function) of each call, by seq.
        failures: the calls that raised, with their live inputs (until `release`).
        index: which pass of a session this is (0 for the first).
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.modules: list[weakref.ref[Any]] = []
        self.failures: list[Failure] = []
        self.index = 0
        self._counts: dict[str, int] = {}

    def seen(self, path: str) -> bool:
        """Whether a call of `path` started in this pass already."""
        return path in self._counts

    def next_index(self, path: str) -> int:
        """The number of this call of `path` in the pass (0 for its first)."""
        index = self._counts.get(path, 0)
        self._counts[path] = index + 1
        return index

    def begin(self, path: str) -> tuple[int, int]:
        """(the seq, the index) of a call of `path` starting now: `add` it next."""
        counts = self._counts
        index = counts.get(path, 0)
        counts[path] = index + 1
        return len(self.calls), index

    def add(self, call: Call, module: weakref.ref[Any]) -> None:
        """A call started; its seq is its position."""
        self.calls.append(call)
        self.modules.append(module)

    def set(self, seq: int, call: Call) -> None:
        self.calls[seq] = call

    def update(self, seq: int, **changes: Any) -> Call | None:
        """Call `seq` with some fields replaced; None when it is gone (a new pass began)."""
        if seq >= len(self.calls):
            return None
        call = self.calls[seq] = dataclasses.replace(self.calls[seq], **changes)
        return call

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)

    def failure_for(self, exc: BaseException | None) -> Failure | None:
        """The innermost recorded call that raised `exc` (or whose exception it wraps)."""
        if exc is None:
            return None
        for failure in self.failures:
            if failure.exception is exc:
                return failure
        # `raise X from e` inside a forward: the recorded failure is X's cause
        for failure in self.failures:
            if failure.exception is exc.__cause__ or failure.exception is exc.__context__:
                return failure
        return None

    def new_pass(self) -> None:
        """Start over for the next pass (in place: readers keep their reference)."""
        self.calls.clear()
        self.modules.clear()
        self.failures.clear()
        self._counts.clear()
        self.index += 1

    def release(self) -> None:
        """Drop the live references kept for diagnosis."""
        self.failures.clear()
