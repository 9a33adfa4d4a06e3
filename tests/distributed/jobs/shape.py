"""Rank 1's second batch is 20x20 (rank 0's are 16x16): rank 1's forward fails in fc1 while
rank 0 goes on into the gradient all-reduce of the backward.

Mode (argv[1]):
  plain    no inspector call (for `python -m inspector run --post-mortem`);
  explain  every forward in `with inspector.explain():`;
  trace    before each step every rank traces model.module, posts a summary of the pass to the
           job's c10d store, and rank 0 prints the first divergence between the ranks; a rank
           whose trace failed raises the trace's error.
"""

import sys

import torch
from jobkit import SmallCNN, batch, finish, log, setup
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import inspector
from inspector.engine import distributed as insp_dist

mode = sys.argv[1] if len(sys.argv) > 1 else "plain"
rank, world = setup()
torch.manual_seed(0)
model = DDP(SmallCNN())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
crit = nn.CrossEntropyLoss()
store = insp_dist.default_store()
for step in range(3):
    x, y = batch(rank, step, img=20 if (rank, step) == (1, 1) else 16)
    opt.zero_grad(set_to_none=True)
    if mode == "trace":
        t = inspector.trace(model.module, x)
        summary = insp_dist.summarize(t.calls, model.module, step=step)
        insp_dist.post_summary(store, f"shape/step{step}", rank, summary)
        if rank == 0:
            peers = insp_dist.read_summaries(store, f"shape/step{step}", world, timeout_s=15)
            log(rank, f"step {step} posted by ranks {sorted(r for r, s in peers.items() if s)}")
            log(rank, f"step {step} divergence: {insp_dist.first_divergence(peers)}")
        if t.error is not None:
            log(rank, f"step {step} trace error: {t.error}")
            raise t.error
    if mode == "explain":
        with inspector.explain():
            loss = crit(model(x), y)
    else:
        loss = crit(model(x), y)
    loss.backward()
    opt.step()
    log(rank, f"step {step} loss {loss.item():.6f}")
finish()
