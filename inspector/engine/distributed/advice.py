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
from typing import Any

from torch import nn

from inspector.engine.records import Diagnosis, format_shape

_LAYER_CHANGE = ("nn.", "out_features=", "in_features=", "in_channels=", "num_features=")


def under_ddp(diag: Diagnosis, chain: list[tuple[nn.Module, Any, Any]], rank: int) -> Diagnosis:
    """`diag` for a failure inside a DDP wrapper (the outermost link of `chain`) on `rank`;
    unchanged when no DDP is in the chain or no fix changes a layer."""
    from torch.nn.parallel import DistributedDataParallel

    ddp = next((m for m, _, _ in chain if isinstance(m, DistributedDataParallel)), None)
    if ddp is None or not any(any(k in f for k in _LAYER_CHANGE) for f in diag.fixes):
        return diag
    args = next(a for m, a, _ in chain if m is ddp)
    shapes = [format_shape(tuple(a.shape)) for a in args if hasattr(a, "shape")]
    given = f"its input {', '.join(shapes)}" if shapes else "its input"
    layer = diag.module or "the model"
    first = (
        f"look at rank {rank}'s data first: under DistributedDataParallel every rank holds "
        f"the same {layer}, so this step's batch on rank {rank} ({given}) is what differs "
        "from what the model was built for, unless every rank fails alike"
    )
    changed = tuple(f"if every rank's data has this shape: {f}" for f in diag.fixes)
    note = (
        f"rank {rank}: DDP checked at construction that every rank's {layer} has these "
        "shapes; resizing it on one rank makes the ranks' models differ"
    )
    return dataclasses.replace(diag, details=(*diag.details, note), fixes=(first, *changed))
