"""A desync that ends in a timeout: rank 0 sleeps inside a forward past the process group's
timeout (PG_TIMEOUT, a few seconds) while rank 1 waits for it in the gradient all-reduce."""

import time

import torch
from jobkit import log, setup
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

rank, world = setup()


class Slow(nn.Module):
    def forward(self, x):
        if rank == 0:
            time.sleep(8)
        return x


torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(4, 4), Slow(), nn.Linear(4, 2)))
model(torch.randn(3, 4)).sum().backward()
log(rank, "done")
