"""Rank 1 builds its model with hidden=48, rank 0 with hidden=32 (a config that differs across
ranks). Before wrapping in DDP, every rank posts its parameter shapes to the job's c10d store
and prints the first parameter that differs; then DDP's own check fails on both ranks."""

import torch
from jobkit import SmallCNN, log, setup
from torch.nn.parallel import DistributedDataParallel as DDP

from inspector.engine import distributed as insp_dist

rank, world = setup()
torch.manual_seed(0)
model = SmallCNN(hidden=48 if rank == 1 else 32)
store = insp_dist.default_store()
insp_dist.post_summary(store, "config/params", rank, insp_dist.parameter_shapes(model))
shapes = insp_dist.read_summaries(store, "config/params", world, timeout_s=15)
log(rank, f"parameter divergence: {insp_dist.parameter_divergence(shapes)}")
DDP(model)
log(rank, "DDP accepted the model")
