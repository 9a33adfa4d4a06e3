"""The record of one pass: its calls, output, error and findings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from inspector.engine.records.calls import Call, Diagnosis, is_diagnosis


class RecordedError(Exception):
    """An exception read back from a saved trace: its type name and message, not the object."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{self.type_name}({self.message!r})"


class Trace:
    """The record of one forward pass (and loss, when given).

    Attributes:
        calls: every module call in the order the calls started.
        output: the model's output, None when the pass failed.
        loss: the loss_fn result, when a loss_fn was given and the pass got that far.
        error: the original exception, or None. `trace()` never raises it.
        findings: the error's diagnosis first (if any), then warnings.
        notes: what the record leaves out and why ("DistributedDataParallel: inspected its
            .module; the wrapper's forward (a collective) was not run").
    """

    def __init__(
        self,
        calls: list[Call],
        *,
        output: Any = None,
        loss: Any = None,
        error: BaseException | None = None,
        findings: list[Diagnosis] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.calls = calls
        self.output = output
        self.loss = loss
        self.error = error
        self.findings: list[Diagnosis] = findings if findings is not None else []
        self.notes: list[str] = notes if notes is not None else []
        self._children: tuple[int, dict[int | None, list[int]]] | None = None

    @property
    def diagnosis(self) -> Diagnosis | None:
        """The error's explanation, or a warning that is a silent bug (ERROR_CLASS); never a
        numeric finding about weights or activations, which stay in `findings`."""
        return next((f for f in self.findings if is_diagnosis(f)), None)

    @property
    def ok(self) -> bool:
        return self.error is None

    def find(self, path: str, index: int = 0) -> Call:
        """The call of module `path` ("" for the root) numbered `index` in this pass."""
        for call in self.calls:
            if call.path == path and call.index == index:
                return call
        known = sorted({c.path for c in self.calls})
        raise KeyError(
            f"no call of {path!r} (call {index}) in this trace; "
            f"recorded paths: {', '.join(repr(p) for p in known[:20])}"
        )

    def children(self, seq: int | None) -> list[Call]:
        """The direct children of call `seq` (None: the top-level calls), in order."""
        if self._children is None or self._children[0] != len(self.calls):
            index: dict[int | None, list[int]] = {}
            for call in self.calls:
                index.setdefault(call.parent, []).append(call.seq)
            self._children = (len(self.calls), index)
        return [self.calls[i] for i in self._children[1].get(seq, [])]

    def __iter__(self) -> Iterator[Call]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        state = "ok" if self.error is None else f"error={type(self.error).__name__}"
        return f"<Trace {len(self.calls)} calls, {state}, {len(self.findings)} findings>"

    def to_json(self, *, indent: int | None = None) -> str:
        """Plain JSON of the record (calls, error text, findings); no live objects."""
        from inspector.engine.records.serialize import dump

        return dump(self.calls, self.error, self.findings, notes=self.notes, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Trace:
        """Read back `to_json()`; raises ValueError with the reason on a malformed document."""
        from inspector.engine.records.serialize import load

        calls, error, findings, notes = load(text)
        recorded = RecordedError(*error) if error is not None else None
        return cls(calls, error=recorded, findings=findings, notes=notes)
