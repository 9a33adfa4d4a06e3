"""Inspecting a model under torch.distributed without changing its collective schedule.

Three parts, none of which issues a collective:

* where this process stands: `rank_info()` reads the process group, never creates one;
* wrappers: `unwrap()` finds the user's module inside DistributedDataParallel (whose forward
  broadcasts buffers and arms the gradient all-reduce: running it on one rank only would leave
  the ranks out of step), and `forward_collective()` says why a module's forward cannot run on
  one rank alone (FSDP all-gathers its sharded parameters in every forward);
* comparing ranks: each rank posts a compact summary of what it saw to the c10d store that
  torchrun (or init_process_group) already runs, and any rank can read its peers' summaries
  back with a deadline. `first_divergence()` and `parameter_divergence()` name the first module
  and value where the ranks differ, with each rank's value.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from torch import nn

from inspector.engine.records import Call, Struct, Value, tensors_in

KEY_PREFIX = "torch-inspector/"
MAX_PAYLOAD = 256 * 1024  # bytes of JSON one rank may post under one key
MAX_TENSORS = 8  # tensors summarised per side (inputs, outputs) of one call

DDP_NOTE = (
    "DistributedDataParallel: inspected its .module; "
    "the wrapper's forward (a collective) was not run"
)


def rank_info() -> tuple[int, int] | None:
    """(rank, world_size) of the default process group, or None when there is none.

    Never initializes a group: a debugger that joined one would change the job it looks at.
    """
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - builds without distributed support
        return None
    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist.get_rank(), dist.get_world_size()


def launched_rank() -> int | None:
    """The rank a launcher gave this process (RANK, with WORLD_SIZE over 1, as torchrun sets
    them), or None. Known before the script makes its process group and after it destroys
    it: for labels (headers, log lines, file names), never to decide what to run."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "1"))
    except (KeyError, ValueError):
        return None
    return rank if world > 1 and 0 <= rank < world else None


def per_rank_path(path: str, rank: int | None) -> str:
    """`path` for one rank's file: a `{rank}` placeholder filled in, else `.rankN` before the
    suffix (trace.json -> trace.rank1.json). With `rank` None (one process) the path is kept,
    a placeholder read as rank 0."""
    if rank is None:
        return path.replace("{rank}", "0") if "{rank}" in path else path
    if "{rank}" in path:
        return path.replace("{rank}", str(rank))
    head, sep, name = path.rpartition(os.sep)
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no suffix, or a dot file such as ".trace"
        return f"{path}.rank{rank}"
    return f"{head}{sep}{stem}.rank{rank}{dot}{suffix}"


# -- wrappers -----------------------------------------------------------------------------------


def _ddp_class() -> type | None:
    try:
        from torch.nn.parallel import DistributedDataParallel
    except ImportError:  # pragma: no cover
        return None
    return DistributedDataParallel


def _fsdp_classes() -> tuple[tuple[type, str], ...]:
    """FSDP's classes, looked up by name: FSDPModule (the class `fully_shard` mixes into a
    module, FSDP2) and FullyShardedDataParallel (FSDP1). Either may be missing from a build."""
    try:
        import torch.distributed.fsdp as fsdp
    except ImportError:  # pragma: no cover
        return ()
    found = []
    for name, label in (
        ("FSDPModule", "FSDP2 (fully_shard)"),
        ("FullyShardedDataParallel", "FullyShardedDataParallel"),
    ):
        cls = getattr(fsdp, name, None)
        if isinstance(cls, type):
            found.append((cls, label))
    return tuple(found)


def unwrap(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The module to inspect in place of a distributed wrapper, and a note saying what was done.

    DistributedDataParallel: its `.module`, whose forward is the user's own code with no
    collective. FSDP (FSDP2's `fully_shard` classes, FSDP1) has no such inside: its parameters
    are shards that every forward all-gathers, so the model itself comes back with a note that
    its forward is a collective (see `forward_collective`). Anything else: `(model, None)`.
    """
    ddp = _ddp_class()
    notes: list[str] = []
    inner = model
    # Nested wrappers (DDP around DDP does not happen in practice, but costs nothing here).
    while ddp is not None and isinstance(inner, ddp) and isinstance(inner.module, nn.Module):
        inner = inner.module
        notes.append(DDP_NOTE)
    for cls, label in _fsdp_classes():
        if isinstance(inner, cls):
            notes.append(
                f"{label}: its parameters are sharded across ranks and its forward all-gathers "
                f"them (a collective); a look from one rank alone would stall the others"
            )
            break
    return inner, "; ".join(notes) or None


def forward_collective(module: nn.Module) -> str | None:
    """Why running `module`'s forward issues a collective, or None when it does not.

    Checks the module and everything inside it: DistributedDataParallel (a buffer broadcast
    and the gradient all-reduce it arms), FSDP2 and FSDP1 (parameter all-gathers).
    """
    ddp = _ddp_class()
    fsdp = _fsdp_classes()
    for path, sub in module.named_modules():
        where = path or "the model"
        if ddp is not None and isinstance(sub, ddp):
            return (
                f"{where} is DistributedDataParallel: its forward broadcasts buffers and arms "
                f"the gradient all-reduce"
            )
        for cls, label in fsdp:
            if isinstance(sub, cls):
                return f"{where} is {label}: its forward all-gathers sharded parameters"
    return None


# -- summaries ----------------------------------------------------------------------------------


def parameter_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Every parameter's full shape by name, as `model.named_parameters()` gives them.

    A sharded parameter (an FSDP2 DTensor) reports its global shape, so ranks compare alike.
    """
    return {name: list(p.shape) for name, p in model.named_parameters()}


def _tensor_side(values: Iterable[Value]) -> tuple[list[list[int]], list[str]]:
    shapes: list[list[int]] = []
    dtypes: list[str] = []
    for info in tensors_in(tuple(values)):
        if len(shapes) == MAX_TENSORS:
            break
        shapes.append(list(info.shape))
        dtypes.append(info.dtype)
    return shapes, dtypes


def call_summaries(calls: Iterable[Call], model: nn.Module | None = None) -> list[dict[str, Any]]:
    """Compact, JSON-ready summaries of module calls, in the calls' order.

    Each holds the path and call index, the module type, the input and output tensor shapes
    and dtypes (the first MAX_TENSORS of each side), the status and, when `model` is given
    (the root the paths are named from), the shapes of the module's own parameters.
    """
    modules = dict(model.named_modules()) if model is not None else {}
    out = []
    for call in calls:
        ins: list[Value] = list(call.inputs)
        if isinstance(call.kwargs, Struct):
            ins.append(call.kwargs)
        in_shapes, in_dtypes = _tensor_side(ins)
        out_shapes, out_dtypes = _tensor_side([call.outputs])
        module = modules.get(call.path)
        own = (
            {n: list(p.shape) for n, p in module.named_parameters(recurse=False)}
            if module is not None
            else {}
        )
        out.append(
            {
                "path": call.path,
                "index": call.index,
                "type": call.type,
                "in": in_shapes,
                "in_dtypes": in_dtypes,
                "params": own,
                "out": out_shapes,
                "out_dtypes": out_dtypes,
                "status": call.status,
            }
        )
    return out


def summarize(
    calls: Iterable[Call], model: nn.Module | None = None, **extra: Any
) -> dict[str, Any]:
    """A rank's summary of one pass: its call summaries, the model's parameter shapes (when
    `model` is given) and any JSON-ready `extra` fields (step, error text, ...)."""
    summary: dict[str, Any] = dict(extra)
    summary["calls"] = call_summaries(calls, model)
    if model is not None:
        summary["params"] = parameter_shapes(model)
    return summary


# -- the store ----------------------------------------------------------------------------------


def default_store(timeout_s: float = 30.0) -> Any | None:
    """The c10d store of this job, reached without a collective, or None outside a job.

    With a process group: the store it was built on (below the group's key prefix). Without
    one, under torchrun (which runs the store in its agent and says so in
    TORCHELASTIC_USE_AGENT_STORE): a client of that store at MASTER_ADDR:MASTER_PORT. Never
    starts a store of its own: the port belongs to the job.
    """
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return None
    if not dist.is_available():
        return None
    if dist.is_initialized():
        get = getattr(dist.distributed_c10d, "_get_default_store", None)
        if get is not None:
            # The group sees the store through its own key prefix; use the store under it, so
            # a rank that posts before its group exists and one that reads after agree on keys.
            store = get()
            while isinstance(store, dist.PrefixStore):
                store = store.underlying_store
            return store
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or not addr or not port:
        return None
    return dist.TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s))


def _key(key: str, rank: int) -> str:
    return f"{KEY_PREFIX}{key}/rank{rank}"


def encode_summary(summary: Mapping[str, Any], limit: int = MAX_PAYLOAD) -> bytes:
    """The JSON bytes of `summary`, at most `limit` long: when too large, calls are dropped
    from the end and `truncated` says how many. Raises ValueError when even no calls is too
    large."""
    data = json.dumps(summary, separators=(",", ":")).encode()
    if len(data) <= limit:
        return data
    calls = summary.get("calls")
    if not isinstance(calls, list):
        raise ValueError(f"summary is {len(data)} bytes, over the {limit} bytes allowed")
    keep_lo, keep_hi = 0, len(calls)  # the largest number of calls that fits, by bisection
    best: bytes | None = None
    while keep_lo <= keep_hi:
        keep = (keep_lo + keep_hi) // 2
        trial = dict(summary, calls=calls[:keep], truncated=len(calls) - keep)
        encoded = json.dumps(trial, separators=(",", ":")).encode()
        if len(encoded) <= limit:
            best, keep_lo = encoded, keep + 1
        else:
            keep_hi = keep - 1
    if best is None:
        raise ValueError(f"summary without its calls is still over the {limit} bytes allowed")
    return best


def post_summary(store: Any, key: str, rank: int, summary: Mapping[str, Any]) -> None:
    """Post this rank's `summary` (JSON-ready) under `key` in the c10d `store`.

    A plain store write: no collective, so posting never changes the job's schedule.
    """
    store.set(_key(key, rank), encode_summary(summary))


def read_summaries(
    store: Any, key: str, world_size: int, timeout_s: float
) -> dict[int, dict[str, Any] | None]:
    """Every rank's summary posted under `key`, waiting at most `timeout_s` in all.

    A rank that posted nothing in time (it failed first, or is stuck in a collective) reads
    as None, as does an unreadable payload.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    found: dict[int, dict[str, Any] | None] = {}
    for rank in range(world_size):
        name = _key(key, rank)
        found[rank] = None
        try:
            if not store.check([name]):
                left = deadline - time.monotonic()
                if left <= 0:
                    continue
                # A zero timeout means "no limit" to c10d: never pass one.
                store.wait([name], timedelta(seconds=max(left, 0.001)))
            value = json.loads(store.get(name))
        except Exception:  # a timeout, a peer gone with the store, a malformed payload
            continue
        if isinstance(value, dict):
            found[rank] = value
    return found


# -- comparing ranks ----------------------------------------------------------------------------


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


def rank_prefixed(text: str, rank: int | None = None) -> str:
    """`text` with each line prefixed `[rankN]: `, as torch's own excepthook writes a rank's
    traceback under torchrun, so the lines of two ranks stay apart in one log. Unchanged
    outside a launched job."""
    rank = launched_rank() if rank is None else rank
    if rank is None or not text:
        return text
    prefix = f"[rank{rank}]: "
    return "".join(prefix + line for line in text.splitlines(keepends=True))


def rank_label() -> str:
    """` [rank N]` inside a launched job, "" elsewhere: for headers and log lines."""
    rank = launched_rank()
    return "" if rank is None else f" [rank {rank}]"
