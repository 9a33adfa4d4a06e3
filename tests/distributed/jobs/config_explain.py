"""Rank 1 builds its model with hidden=48, rank 0 with hidden=32, and wraps it in DDP under
`inspector.explain(model)`: DDP's own check fails on rank 1 by parameter index (rank 0 then
loses its peer); the note the inspector adds there names the parameter and both ranks' shapes,
compared through the c10d store (each rank posted its shapes as the block began)."""

import torch
from jobkit import SmallCNN, log, setup
from torch.nn.parallel import DistributedDataParallel as DDP

import inspector

rank, world = setup()
torch.manual_seed(0)
model = SmallCNN(hidden=48 if rank == 1 else 32)
try:
    with inspector.explain(model):
        DDP(model)
except RuntimeError as exc:
    for note in getattr(exc, "__notes__", []):
        for line in note.splitlines():
            log(rank, f"note: {line}")
    raise
