"""Silent bugs of positions and heads: the pass runs, the numbers are wrong.

- A position table indexed by the batch size: an Embedding whose index is made in forward
  (not a model input) and holds exactly 0..B-1 for a batch of B, while the input's sequence
  has another length: every token of sample b gets position b (`torch.arange(x.size(0))`
  where `x.size(1)` was meant). Evidence: the index's recorded values, its size, the input's
  shape; a table indexed by the sequence length stays quiet, and so does a batch whose size
  equals the sequence length (nothing to tell them apart).
- Heads that do not cover the width: a module whose head size was floored from
  width // heads (its attributes say so) when the width is not a multiple of the heads, so
  heads * head_size features are used and the rest dropped. A head size set on its own
  (wider or narrower by design, as some models do) stays quiet.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from torch import nn

from inspector.engine.capture.naming import is_library_file, source_line
from inspector.engine.diagnose.context import warning_about
from inspector.engine.diagnose.dataflow import Walk
from inspector.engine.diagnose.dataflow_values import Tensor
from inspector.engine.diagnose.dataflow_walk import parse_function
from inspector.engine.records import Call, Diagnosis, SourceLine, TensorInfo, first_tensor
from inspector.engine.records import format_shape as fmt

if TYPE_CHECKING:
    from inspector.engine.records import Trace


def position_by_batch(trace: Trace, modules: Sequence[Any] = ()) -> list[Diagnosis]:
    root = next((c for c in trace.calls if c.parent is None and c.path != "loss_fn"), None)
    data = _sequence_input(root)
    if root is None or data is None:
        return []
    batch, length = data.shape[0], data.shape[1]
    if batch == length:
        return []
    inputs = {id(t) for t in _tensors(root)}
    found = []
    for call in trace.calls:
        module = modules[call.seq]() if call.seq < len(modules) else None
        if not isinstance(module, nn.Embedding) or call.status != "ok":
            continue
        index = first_tensor(call.inputs)
        if index is None or id(index) in inputs or not _counts_up_to(index, batch):
            continue
        if index.producer is not None or module.num_embeddings < length:
            continue  # made by a layer (not an arange), or a table too short for positions
        out = first_tensor(call.outputs)
        found.append(
            _at(
                _index_line(trace, modules, call, module),
                warning_about(
                    call,
                    f"{call.name} is indexed with positions 0..{batch - 1}, one per sample of the "
                    f"batch ({batch}), but the sequences have {length} positions",
                    (
                        f"its index {fmt(index.shape)} holds 0..{batch - 1}: the batch size, where "
                        f"the input {fmt(data.shape)} has {length} positions per sequence",
                        "every position of sample b then gets the embedding of position b"
                        + (f"; its output {fmt(out.shape)} is broadcast over them" if out else ""),
                    ),
                    (
                        f"index the positions: torch.arange(x.size(1)) gives 0..{length - 1} "
                        f"({length} positions, within its {module.num_embeddings})",
                    ),
                    "position-by-batch",
                ),
            )
        )
    return found


def _index_line(trace: Trace, modules: Sequence[Any], call: Call, table: nn.Module
                ) -> SourceLine | None:  # fmt: skip
    """The line that made the table's index, from the walk of the forward that called it."""
    if call.parent is None:
        return None
    walk = Walk(trace, list(modules))
    walk.output(trace.calls[call.parent])
    for module, args in walk.seen:
        made = args[0] if module is table and args else None
        if isinstance(made, Tensor) and made.step is not None:
            return source_line(made.step.file, made.step.lineno, made.step.function)
    return None


def heads_floor(trace: Trace, modules: Sequence[Any] = ()) -> list[Diagnosis]:
    found = []
    seen: set[int] = set()
    count = len(modules)
    for call in trace.calls:
        module = modules[call.seq]() if call.seq < count else None
        if not isinstance(module, nn.Module) or call.status != "ok":
            continue
        if vars(module).keys().isdisjoint(_ANY_HEADS):
            continue  # most modules: no number of heads at all
        if id(module) in seen:
            continue
        seen.add(id(module))
        numbers = _head_numbers(module)
        if numbers is None:
            continue
        width, heads, size, attr = numbers
        used = heads * size
        line = assignment_line(module, attr)
        found.append(
            _at(
                line,
                warning_about(
                    call,
                    f"{call.name} splits {width} features into {heads} heads of {size}: "
                    f"{heads}*{size} = {used}, so {width - used} features are never attended",
                    (
                        f"its head size is {width} // {heads} = {size}, floored: {width} is not a "
                        f"multiple of {heads}",
                    ),
                    (
                        f"use a number of heads that divides {width} "
                        f"(e.g. {_divisor_near(width, heads)}), or a width that {heads} divides "
                        f"(e.g. {(width // heads + 1) * heads})",
                    ),
                    "heads-floor",
                ),
            )
        )
    return found


_WIDTH = ("embed_dim", "hidden_size", "d_model", "dim", "n_embd")
_HEADS = ("num_heads", "n_heads", "num_attention_heads", "n_head", "heads")
_ANY_HEADS = frozenset(_HEADS)
_SIZE = ("head_dim", "attention_head_size", "d_head", "head_size", "dim_head")


def _head_numbers(module: nn.Module) -> tuple[int, int, int, str] | None:
    """(width, heads, head size, the head size's attribute) when the head size is
    width // heads and heads does not divide the width; None otherwise (or when the
    attributes are not all there)."""
    own = vars(module)
    if own.keys().isdisjoint(_ANY_HEADS):
        return None  # most modules: no number of heads at all
    width = next((own[a] for a in _WIDTH if type(own.get(a)) is int), None)
    heads = next((own[a] for a in _HEADS if type(own.get(a)) is int), None)
    attr = next((a for a in _SIZE if type(own.get(a)) is int), None)
    if width is None or heads is None or attr is None or heads <= 1:
        return None
    size = own[attr]
    if width % heads == 0 or size != width // heads:
        return None
    return width, heads, size, attr


def assignment_line(module: nn.Module, attr: str) -> SourceLine | None:
    """The line of the module's __init__ (or a base class's) that sets `self.<attr>`."""
    for cls in type(module).__mro__:
        init = cls.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is None or is_library_file(code.co_filename):
            continue
        fn = parse_function(code)
        if fn is None:
            continue
        for node in ast.walk(fn.node):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == attr:
                    return source_line(fn.file, node.lineno + fn.offset, code.co_name)
    return None


def _at(line: SourceLine | None, found: Diagnosis) -> Diagnosis:
    return replace(found, line=line) if line is not None else found


def _divisor_near(width: int, heads: int) -> int:
    divisors = [d for d in range(1, width + 1) if width % d == 0]
    return min(divisors, key=lambda d: (abs(d - heads), d))


def _sequence_input(root: Call | None) -> TensorInfo | None:
    """The model's first input with a batch and a sequence dim: (B, T) ids or (B, T, D)."""
    if root is None:
        return None
    for value in root.inputs:
        info = first_tensor(value)
        if info is not None and info.ndim in (2, 3):
            return info
    return None


def _tensors(call: Call) -> list[TensorInfo]:
    found = [first_tensor(v) for v in call.inputs]
    if call.kwargs is not None:
        found.extend(first_tensor(v) for _, v in call.kwargs.fields)
    return [t for t in found if t is not None]


def _counts_up_to(index: TensorInfo, batch: int) -> bool:
    """An int index of `batch` values, exactly 0..batch-1 by its recorded statistics."""
    stats = index.stats
    if stats is None or not index.dtype.startswith("int") or index.numel != batch:
        return False
    if index.ndim > 2 or (index.ndim == 2 and 1 not in index.shape):
        return False
    return stats.min == 0 and stats.max == batch - 1 and stats.nan == 0 and batch > 1
