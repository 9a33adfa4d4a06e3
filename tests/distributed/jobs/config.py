"""Rank 1 builds its model with hidden=48, rank 0 with hidden=32 (a config that differs across
ranks). Every rank posts its parameter shapes to the job's c10d store before it joins the
process group (a client of torchrun's store), reads its peers' after (the group's store), and
prints the first parameter that differs; then DDP's own check fails on both ranks."""

import torch
from jobkit import SmallCNN, log, setup
from torch.nn.parallel import DistributedDataParallel as DDP

from inspector.engine import distributed as insp_dist

rank = insp_dist.launched_rank()
assert rank is not None and insp_dist.rank_info() is None
torch.manual_seed(0)
model = SmallCNN(hidden=48 if rank == 1 else 32)
early = insp_dist.default_store()
log(rank, f"store before the group: {type(early).__name__}")
insp_dist.post_summary(early, "config/params", rank, insp_dist.parameter_shapes(model))
rank, world = setup()
shapes = insp_dist.read_summaries(insp_dist.default_store(), "config/params", world, timeout_s=15)
log(rank, f"parameter divergence: {insp_dist.parameter_divergence(shapes)}")
DDP(model)
log(rank, "DDP accepted the model")
