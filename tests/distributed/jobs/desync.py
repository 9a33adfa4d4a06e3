"""A desync for the hang view: rank 0 is slow inside a forward while rank 1 already waits in
the backward's gradient all-reduce. Rank 0, from inside that forward, sends SIGUSR1 to both
ranks (the view of a stuck job from outside: `kill -USR1` to every rank), then goes on.

Run it under `python -m inspector run`: each rank writes where it is to its stderr."""

import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from jobkit import log, setup
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

rank, world = setup()
pids = Path(os.environ["DESYNC_DIR"])
(pids / f"rank{rank}.pid").write_text(str(os.getpid()))


class Slow(nn.Module):
    def forward(self, x):
        if rank == 0:
            peer = pids / "rank1.pid"
            while not peer.exists():
                time.sleep(0.02)
            time.sleep(1.5)  # rank 1 is in its backward by now, waiting for rank 0's gradients
            os.kill(int(peer.read_text()), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.5)
        return x


torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(4, 4), Slow(), nn.Linear(4, 2)))
out = model(torch.randn(3, 4))
out.sum().backward()
dist.barrier()
log(rank, "done")
dist.destroy_process_group()
