"""Where the ranks' summaries first differ: the module, what differs, each rank's value.

`first_divergence()` compares the ranks' passes call by call, `parameter_divergence()`
their parameter shapes; both name the value most ranks hold as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Divergence:
    """Where the ranks first differ: the module, what differs, and each rank's value.

    Attributes:
        module: the module's path ("" for the root).
        aspect: what differs: "input", "input dtype", "output", "output dtype", "status",
            "call" (the ranks ran different modules), or "parameter NAME".
        groups: (value, ranks) pairs, the ranks that differ first and the reference (the value
            most ranks hold; on a tie, the lowest rank's) last.
        call: the position of the call in pre-order, None for a parameter comparison.
        index: the call index of the module in its pass (0 for its first call).
    """

    module: str
    aspect: str
    groups: tuple[tuple[str, tuple[int, ...]], ...]
    call: int | None = None
    index: int = 0

    @property
    def odd_ranks(self) -> tuple[int, ...]:
        """The ranks whose value differs from the reference."""
        return tuple(r for _, ranks in self.groups[:-1] for r in ranks)

    def __str__(self) -> str:
        where = self.module or "(root)"
        if self.index:
            where += f" (call {self.index + 1})"
        parts = [f"{value} on {_ranks(ranks)}" for value, ranks in self.groups]
        text = ", ".join(parts[:-1]) + " vs " + parts[-1]
        if self.aspect.startswith("parameter "):
            name = self.aspect.removeprefix("parameter ")
            return f"{self.module + '.' if self.module else ''}{name} {text}"
        if self.aspect == "call":
            return f"call {(self.call or 0) + 1} of the pass is {text}"
        if self.aspect == "status":
            return f"{where} {text}"
        return f"{where} {self.aspect} {text}"


def _ranks(ranks: Sequence[int]) -> str:
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    return "ranks " + ", ".join(str(r) for r in ranks)


def _groups(values: Mapping[int, str]) -> tuple[tuple[str, tuple[int, ...]], ...] | None:
    """Ranks grouped by value, odd groups first, reference last; None when all agree."""
    by_value: dict[str, list[int]] = {}
    for rank in sorted(values):
        by_value.setdefault(values[rank], []).append(rank)
    if len(by_value) < 2:
        return None
    # The reference: the most common value; on a tie, the one the lowest rank holds.
    reference = max(by_value, key=lambda v: (len(by_value[v]), -by_value[v][0]))
    odd = sorted((v for v in by_value if v != reference), key=lambda v: by_value[v][0])
    return tuple((v, tuple(by_value[v])) for v in [*odd, reference])


def _shapes(shapes: Any) -> str:
    if not shapes:
        return "no tensor"
    return ", ".join(_shape(s) for s in shapes)


def _shape(shape: Any) -> str:
    dims = tuple(shape) if isinstance(shape, list | tuple) else ()
    if len(dims) == 1:
        return f"({dims[0]},)"
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _dtypes(dtypes: Any) -> str:
    return ", ".join(str(d) for d in dtypes) if dtypes else "no tensor"


def _call_name(summary: Mapping[str, Any] | None) -> str:
    if summary is None:
        return "nothing"
    path = summary.get("path") or "(root)"
    index = summary.get("index") or 0
    return f"{path} ({summary.get('type', '?')})" + (f" call {index + 1}" if index else "")


_STATUS = {"ok": "ran", "error": "failed", "running": "was still running"}

# What a call is compared on, in the order a cause precedes its effects (the module's own
# parameters, between inputs and outputs, are compared apart: by name).
_ASPECTS: tuple[tuple[str, str, Any], ...] = (
    ("input", "in", _shapes),
    ("input dtype", "in_dtypes", _dtypes),
    ("output", "out", _shapes),
    ("output dtype", "out_dtypes", _dtypes),
    ("status", "status", lambda s: _STATUS.get(str(s), str(s))),
)


def first_divergence(
    summaries: Mapping[int, Sequence[Mapping[str, Any]] | Mapping[str, Any] | None],
) -> Divergence | None:
    """The first module call, in pre-order, where the ranks' passes differ; None if they agree.

    `summaries` maps a rank to its call summaries (`call_summaries()`), or to a whole
    `summarize()` dict, or to None for a rank that posted nothing (left out). Calls are
    matched by position; per call, the ranks are compared on which module ran, its input
    shapes and dtypes, its own parameter shapes, its output shapes and dtypes, and whether it
    failed.
    """
    passes: dict[int, Sequence[Mapping[str, Any]]] = {}
    for rank, value in summaries.items():
        calls = value.get("calls") if isinstance(value, Mapping) else value
        if isinstance(calls, Sequence):
            passes[rank] = calls
    if len(passes) < 2:
        return None
    for position in range(max(len(calls) for calls in passes.values())):
        here = {
            r: calls[position] if position < len(calls) else None for r, calls in passes.items()
        }
        groups = _groups({r: _call_name(s) for r, s in here.items()})
        if groups is not None:
            return Divergence("", "call", groups, call=position)
        first = next(s for s in here.values() if s is not None)
        path, index = str(first.get("path", "")), int(first.get("index") or 0)
        ran = {r: s for r, s in here.items() if s is not None}
        for aspect, field, show in _ASPECTS:
            if aspect == "output":  # parameters explain outputs: compared before them
                found = _parameter_groups({r: s.get("params") or {} for r, s in ran.items()})
                if found is not None:
                    name, groups = found
                    return Divergence(path, f"parameter {name}", groups, position, index)
            groups = _groups({r: show(s.get(field)) for r, s in ran.items()})
            if groups is not None:
                return Divergence(path, aspect, groups, position, index)
    return None


def _parameter_groups(
    by_rank: Mapping[int, Mapping[str, Any]],
) -> tuple[str, tuple[tuple[str, tuple[int, ...]], ...]] | None:
    names: dict[str, None] = {}
    for rank in sorted(by_rank):
        names.update(dict.fromkeys(by_rank[rank]))
    for name in names:
        values = {
            r: _shape(shapes[name]) if name in shapes else "absent" for r, shapes in by_rank.items()
        }
        groups = _groups(values)
        if groups is not None:
            return name, groups
    return None


def parameter_divergence(
    param_shapes_by_rank: Mapping[int, Mapping[str, Any] | None],
) -> Divergence | None:
    """The first parameter whose shape differs across ranks (or exists on some ranks only).

    `param_shapes_by_rank` maps a rank to `parameter_shapes(model)`, or to a whole
    `summarize()` dict (its "params" are used), or to None (left out). Names are taken in the
    lowest rank's order, then any only other ranks have. The result reads "fc1.weight
    (48, 256) on rank 1 vs (32, 256) on rank 0": named, with both values, before DDP's own
    check refers to the parameter by its index.
    """
    present: dict[int, Mapping[str, Any]] = {}
    for rank, shapes in param_shapes_by_rank.items():
        if isinstance(shapes, Mapping) and isinstance(shapes.get("calls"), list):
            shapes = shapes.get("params")  # a summarize() document
        if isinstance(shapes, Mapping):
            present[rank] = shapes
    if len(present) < 2:
        return None
    found = _parameter_groups(present)
    if found is None:
        return None
    name, groups = found
    module, _, leaf = name.rpartition(".")
    return Divergence(module, f"parameter {leaf}", groups)
