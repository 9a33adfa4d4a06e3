"""What a family explainer gets: the failing call, its live inputs, the failed op, and the
trace to follow each wrong number back to the call that produced it."""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from inspector.engine.diagnose.fixes import InputChange, Replacement, resized
from inspector.engine.diagnose.locate import FailedOp
from inspector.engine.records import (
    Call,
    Diagnosis,
    SourceLine,
    TensorInfo,
    exception_message,
    first_tensor,
    format_shape,
)

if TYPE_CHECKING:
    from inspector.engine.records import Trace

_RESHAPE = re.compile(r"\.(view|reshape|flatten|permute|transpose|squeeze|unsqueeze)\(|flatten\(")


@dataclass
class Explanation:
    """The words of a finding; the dispatcher adds where it happened."""

    summary: str
    details: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    code: str = ""
    line: SourceLine | None = None  # overrides the traceback's line (e.g. the view that folded)
    module: str | None = None  # overrides the failing call's path (e.g. the root that viewed)
    module_type: str | None = None  # that module's class, when it is not the failing call's
    replacements: list[Any] = field(default_factory=list)  # verify.Replacement: fixes to check

    def replace_layer(self, fix: str, module: Any, **changes: int) -> None:
        """Offer `fix`, a new layer in the place of `module` with `changes`; it is checked on
        the walked pass before it is shown."""
        self.fixes.append(fix)
        self.replacements.append(Replacement(fix, module, lambda: resized(module, **changes)))

    def change_input(self, fix: str, name: str, change: Callable[[Any], Any]) -> None:
        """Offer `fix`, a change of the model's input `name` (`change` maps a meta tensor of
        its shape to the changed one); it is checked on the walked pass before it is shown."""
        self.fixes.append(fix)
        self.replacements.append(InputChange(fix, name, change))


@dataclass
class Context:
    """Everything known about one failure."""

    trace: Trace
    call: Call
    module: Any  # the live module (or function) whose call raised
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    op: FailedOp | None
    error: BaseException
    line: SourceLine | None
    modules: list[Any] = field(default_factory=list)  # weak references, by call seq
    lookup: Callable[[Any], TensorInfo | None] | None = None  # live tensor -> its record
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # walks, once per failure

    @property
    def name(self) -> str:
        """The failing module as a fix names it: its path, or `model` for the root (the
        user's own variable, most often)."""
        return self.call.path or "model"

    @property
    def message(self) -> str:
        return exception_message(self.error)

    def tensor_arg(self, i: int = 0) -> torch.Tensor | None:
        """The i-th tensor among the failing call's positional inputs."""
        found = [a for a in _flat(self.args) if isinstance(a, torch.Tensor)]
        return found[i] if i < len(found) else None

    def op_tensors(self) -> list[torch.Tensor]:
        if self.op is None:
            return []
        return [a for a in _flat(self.op.args) if isinstance(a, torch.Tensor)]

    def input_info(self, i: int = 0) -> TensorInfo | None:
        infos = [first_tensor(v) for v in self.call.inputs]
        infos = [x for x in infos if x is not None]
        return infos[i] if i < len(infos) else None

    def live_module(self, seq: int) -> Any:
        if 0 <= seq < len(self.modules):
            return self.modules[seq]()
        return None

    def origin(self, info: TensorInfo | None) -> str:
        """Where a tensor came from, in words: `pool (MaxPool2d) output (4, 6, 4, 4)`."""
        return describe_origin(self.trace, info, self.call)


def _flat(values: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(values, (tuple, list)):
        for v in values:
            out.extend(_flat(v))
    elif isinstance(values, dict):
        for v in values.values():
            out.extend(_flat(v))
    else:
        out.append(values)
    return out


def warning_about(call: Call, summary: str, details: tuple[str, ...], fixes: tuple[str, ...],
             code: str) -> Diagnosis:  # fmt: skip
    """A warning about `call`, pointing at the line that made it."""
    return Diagnosis(
        kind="warning",
        module=call.path,
        module_type=call.type,
        call=call.seq,
        summary=summary,
        line=call.call_site,
        details=details,
        fixes=fixes,
        code=code,
    )


def producer_call(trace: Trace, info: TensorInfo | None) -> Call | None:
    """The call whose output this tensor is, or whose output it is a view of."""
    if info is None:
        return None
    seq = info.producer if info.producer is not None else info.view_of
    return trace.calls[seq] if seq is not None and seq < len(trace.calls) else None


def describe_origin(trace: Trace, info: TensorInfo | None, consumer: Call | None = None) -> str:
    if info is None:
        return "an input"
    if info.producer is not None and info.producer < len(trace.calls):
        call = trace.calls[info.producer]
        return f"the output of {label(call)}"
    if info.view_of is not None and info.view_of < len(trace.calls):
        base = trace.calls[info.view_of]
        base_info = first_tensor(base.outputs)
        text = f"{base.name}'s output"
        if base_info is not None:
            text += f" {format_shape(base_info.shape)}"
        text += f" reshaped to {format_shape(info.shape)}"
        line = reshape_line(trace, base, consumer) if consumer is not None else None
        if line is not None:
            text += f" at {short_file(line.file)}:{line.lineno}"
        return text
    if consumer is not None:
        sibling = previous_sibling(trace, consumer)
        if sibling is not None:
            return _via_sibling(sibling, info)
        if consumer.parent is None:
            return "the model input" if consumer.path != "loss_fn" else "the model output"
        parent = trace.calls[consumer.parent]
        parent_in = first_tensor(parent.inputs)
        if parent_in is not None and parent_in.shape == info.shape:
            return f"the input of {parent.name}"
    return "a tensor computed between module calls"


def is_model_input(trace: Trace, info: TensorInfo | None, consumer: Call) -> bool:
    """Whether `info`, an input of `consumer`, is the model's own input, handed down
    unchanged: no call made it, and each call that holds `consumer` received a tensor of
    that shape before any of its children ran."""
    if info is None or info.producer is not None or info.view_of is not None:
        return False
    call = consumer
    while call.parent is not None:
        if previous_sibling(trace, call) is not None:
            return False
        parent = trace.calls[call.parent]
        parent_in = first_tensor(parent.inputs)
        if parent_in is None or parent_in.shape != info.shape:
            return False
        call = parent
    return True


def previous_sibling(trace: Trace, consumer: Call) -> Call | None:
    """The last call that finished in the same forward before `consumer` started."""
    for call in reversed(trace.calls[: consumer.seq]):
        if call.parent == consumer.parent and call.status == "ok":
            return call
        if call.seq == consumer.parent:
            break
    return None


def _via_sibling(sibling: Call, info: TensorInfo) -> str:
    out = first_tensor(sibling.outputs)
    name = label(sibling)
    if out is None:
        return f"the code after {name}"
    if out.shape == info.shape:
        return f"the output of {name}, through functional ops in forward"
    if out.ndim > 1 and info.ndim > 1 and product(out.shape[1:]) == product(info.shape[1:]):
        per = product(out.shape[1:])
        made = f"{dims_product_text(out.shape[1:])} = {per}" if out.ndim > 2 else str(per)
        return (
            f"the output of {name}, {format_shape(out.shape)}: {made} values per sample, "
            f"reshaped to {format_shape(info.shape)}"
        )
    return f"the code after {name}, whose output is {format_shape(out.shape)}"


def reshape_line(trace: Trace, base: Call | None, consumer: Call | None) -> SourceLine | None:
    """The line between `base`'s call and `consumer`'s that reshaped base's output.

    Both calls are made from the same forward; a view/reshape/flatten between them in that
    function is the line that changed the shape. Without `base`, the search goes back to the
    start of the consumer's calling function.
    """
    if consumer is None or consumer.call_site is None:
        return None
    end = consumer.call_site
    first = 1
    if base is not None and base.call_site is not None:
        start = base.call_site
        if start.file != end.file or start.function != end.function or start.lineno > end.lineno:
            return None
        first = start.lineno
    for lineno in range(end.lineno, max(first, end.lineno - 200) - 1, -1):
        text = linecache.getline(end.file, lineno)
        if base is None and text.lstrip().startswith("def "):
            break
        if _RESHAPE.search(text):
            return SourceLine(end.file, lineno, text.rstrip("\n"), end.function)
    return None


def label(call: Call) -> str:
    """`fc1 (Linear(in_features=784, out_features=128, bias=True))`; long reprs by type only."""
    shown = call.module_repr if call.module_repr and len(call.module_repr) <= 56 else call.type
    return f"{call.name} ({shown})"


def short_file(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def product(dims: tuple[int, ...] | list[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def dims_product_text(dims: tuple[int, ...]) -> str:
    """`6*4*4` for (6, 4, 4)."""
    return "*".join(str(d) for d in dims) if dims else "1"
