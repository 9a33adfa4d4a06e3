"""Records of calls: one module call, the source line it came from, the op that failed,
and a finding (an error explained, or a warning)."""

from __future__ import annotations

from dataclasses import dataclass

from inspector.engine.records.tensors import (
    Gradient,
    Struct,
    Units,
    Value,
    format_shape,
    tensors_in,
)


@dataclass(frozen=True, slots=True)
class SourceLine:
    """A line of source code: where a call was made or an error was raised."""

    file: str
    lineno: int
    text: str
    function: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.lineno}"


@dataclass(frozen=True, slots=True)
class Call:
    """One call of one module during a pass.

    Calls are listed in the order they started (pre-order). `seq` is the call's position in
    that list, `index` counts the calls of the same module in this pass (0 for the first, 1
    for the second when a module is reused), `parent` is the `seq` of the enclosing call.
    """

    seq: int
    path: str
    index: int
    type: str
    depth: int
    parent: int | None
    inputs: tuple[Value, ...]
    kwargs: Struct | None = None
    outputs: Value = None
    status: str = "running"  # "running" | "ok" | "error"
    error: str | None = None  # "RuntimeError: ..." for a failed call
    module_repr: str = ""  # the module's own line, e.g. "Linear(in_features=4, out_features=2)"
    params: int = 0  # parameters of this module and its children, each Parameter counted once
    duration_ms: float = 0.0
    call_site: SourceLine | None = None  # the line in the caller that made this call
    units: Units | None = None  # activations: dead or saturated units
    grad: Gradient | None = None  # filled in by the backward pass, when one is recorded

    @property
    def key(self) -> tuple[str, int]:
        """The identity of a call within a pass: (path, index)."""
        return (self.path, self.index)

    @property
    def name(self) -> str:
        """A display name: the path ('(root)' for the root), with the call number if reused."""
        base = self.path or "(root)"
        return base if self.index == 0 else f"{base} (call {self.index + 1})"

    @property
    def finished(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True, slots=True)
class OpInfo:
    """A torch operation and the shapes of its tensor operands."""

    name: str
    operands: tuple[Value, ...] = ()
    kwargs: tuple[tuple[str, Value], ...] = ()

    def operand_shapes(self) -> list[tuple[int, ...]]:
        return [v.shape for v in tensors_in(self.operands)]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A finding: an error that stopped the pass, or a warning about a silent bug or anomaly.

    `str(diag)` is the whole explanation a user reads: what failed, where, actual against
    expected, and the fixes.
    """

    kind: str  # "error" | "warning"
    module: str  # path of the culprit module, "" for the root's own code
    summary: str  # one line: what is wrong
    module_type: str = ""
    call: int | None = None  # seq of the culprit call in the trace, when there is one
    line: SourceLine | None = None
    op: OpInfo | None = None
    details: tuple[str, ...] = ()  # actual vs expected, where each wrong number came from
    fixes: tuple[str, ...] = ()
    code: str = ""  # a stable identifier of the family: "linear-in-features", "nan-origin", ...
    exception: str | None = None  # "RuntimeError: mat1 and mat2 shapes cannot be multiplied"

    def __str__(self) -> str:
        where = self.module if self.module else "(root)"
        if self.module_type:
            where += f" ({self.module_type})"
        head = f"{self.kind}: {where}: {self.summary}"
        lines = [head]
        if self.line is not None:
            lines.append(f"  at {self.line.file}:{self.line.lineno}: {self.line.text.strip()}")
        if self.op is not None:
            shapes = ", ".join(format_shape(s) for s in self.op.operand_shapes())
            lines.append(f"  op: {self.op.name}({shapes})")
        lines.extend(f"  {d}" for d in self.details)
        if self.fixes:
            lines.append("  fix:")
            lines.extend(f"    - {f}" for f in self.fixes)
        return "\n".join(lines)


# Warnings that can stand as the diagnosis of a pass that ran: the program computes something
# other than what it means (a silent shape bug, a NaN), not a statistic of its weights.
ERROR_CLASS = frozenset(
    {"batch-changed", "loss-broadcast", "batch-first", "linear-on-map", "nan-origin",
     "nan-gradient", "nan-input", "nan-weights", "input-mask-shape", "input-seq-first",
     "position-by-batch", "heads-floor"}
)  # fmt: skip


def is_diagnosis(finding: Diagnosis) -> bool:
    """An error, or an error-class warning (ERROR_CLASS)."""
    return finding.kind == "error" or finding.code in ERROR_CLASS


def exception_text(exc: BaseException) -> str:
    """`RuntimeError: shape '[-1, 27]' is invalid ...`, also for an exception whose own
    __str__ fails (as Python's traceback printing does, it says so instead of raising)."""
    return f"{type(exc).__name__}: {exception_message(exc)}"


def exception_message(exc: BaseException) -> str:
    """str(exc), or a stand-in when the exception's own __str__ fails."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"
