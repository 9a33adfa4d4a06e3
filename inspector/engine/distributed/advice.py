"""Advice for a rank whose forward failed inside DistributedDataParallel.

DDP checks at construction that every rank holds parameters of the same shapes, so a layer
that rejects its input on one rank is the same layer every rank holds: "rebuild fc1 as
nn.Linear(400, 32)" on the failing rank would make the ranks' models differ (DDP refuses
them, or the other ranks fail instead). What differs is what this rank fed the model. The
diagnosis keeps its numbers; the input is named first, the layer change comes after, marked
as the change for every rank's data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from torch import nn

from inspector.engine.records import Call, Diagnosis, format_shape, tensors_in

_LAYER_CHANGE = ("nn.", "out_features=", "in_features=", "in_channels=", "num_features=")


INPUTS_KEY = "run/inputs"


def post_root_inputs(call: Call, pass_index: int) -> None:
    """Under a process group: the shapes of a pass's root input, on the job's store (a store
    write, no collective), for a rank whose forward fails to compare with."""
    from inspector.engine.distributed.store import post_own

    shapes = [list(t.shape) for t in tensors_in(call.inputs)]
    post_own(INPUTS_KEY, {"pass": pass_index + 1, "shapes": shapes})


def peer_inputs() -> list[str]:
    """What the other ranks fed their model last, as posted (waiting a moment at most)."""
    from inspector.engine.distributed.store import peers_posted

    return [
        f"rank {r}'s input in pass {s.get('pass')}: "
        + ", ".join(format_shape(tuple(shape)) for shape in s.get("shapes", []))
        for r, s in peers_posted(INPUTS_KEY).items()
    ]


def under_ddp(
    diag: Diagnosis, rank: int, given: list[tuple[int, ...]], peers: Sequence[str] = ()
) -> Diagnosis:
    """`diag` for a failure inside a DDP wrapper on `rank`, whose input had the shapes
    `given` (and the other ranks', `peers`, when they posted them); unchanged when no fix
    changes a layer."""
    if not any(any(k in f for k in _LAYER_CHANGE) for f in diag.fixes):
        return diag
    shapes = ", ".join(format_shape(s) for s in given)
    seen = f"its input {shapes}" if shapes else "its input"
    layer = diag.module or "the model"
    first = (
        f"look at rank {rank}'s data first: under DistributedDataParallel every rank holds "
        f"the same {layer}, so this step's batch on rank {rank} ({seen}) is what differs "
        "from what the model was built for, unless every rank fails alike"
    )
    changed = tuple(f"if every rank's data has this shape: {f}" for f in diag.fixes)
    note = (
        f"rank {rank}: DDP checked at construction that every rank's {layer} has these "
        "shapes; resizing it on one rank makes the ranks' models differ"
    )
    details = (*diag.details, note, *(f"{p} (rank {rank}'s: {seen.removeprefix('its input ')})"
                                       for p in peers))  # fmt: skip
    return dataclasses.replace(diag, details=details, fixes=(first, *changed))


def ddp_input_in_chain(chain: list[tuple[nn.Module, Any, Any]]) -> list[tuple[int, ...]] | None:
    """The input shapes of the DistributedDataParallel among the module calls a traceback
    unwound (outermost first), or None when there is none."""
    from torch.nn.parallel import DistributedDataParallel

    for module, args, _ in chain:
        if isinstance(module, DistributedDataParallel):
            return [tuple(a.shape) for a in args if hasattr(a, "shape")]
    return None


def ddp_input_in_calls(calls: Sequence[Call], call: Call) -> list[tuple[int, ...]] | None:
    """The same, from a recorded pass: the input shapes of the DistributedDataParallel call
    that holds `call`, or None."""
    seq: int | None = call.seq
    while seq is not None and seq < len(calls):
        holder = calls[seq]
        if holder.type == "DistributedDataParallel":
            return [t.shape for t in tensors_in(holder.inputs)]
        seq = holder.parent
    return None
