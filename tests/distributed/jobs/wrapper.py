"""A look at the DDP wrapper itself from rank 0 only, between two real steps on both ranks.

Mode (argv[1]): trace (`inspector.trace(model, x)`) or check (`inspector.check(model, shape)`).
Correct: the look runs no collective (it inspects the wrapper's .module), so the ranks stay
in step, both real steps complete on both ranks, and their weights agree. The look comes after
a first step, when DDP rebuilds its gradient buckets (a collective) in the next forward.
"""

import sys

import torch
from jobkit import SmallCNN, batch, finish, log, setup, weights_digest
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import inspector

mode = sys.argv[1]
rank, world = setup()
torch.manual_seed(0)
model = DDP(SmallCNN())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(2):
    x, y = batch(rank, step)
    if rank == 0 and step == 1:
        if mode == "trace":
            t = inspector.trace(model, x)
            log(rank, f"look: {len(t.calls)} calls, error {t.error!r}")
            log(rank, f"root: {t.calls[0].type if t.calls else None}")
        else:
            found = inspector.check(model, (8, 3, 16, 16))
            log(rank, f"look: {len(found)} findings, errors {[f.summary for f in found.errors]}")
            log(rank, f"root: {found.calls[0].type if found.calls else None}")
    opt.zero_grad(set_to_none=True)
    nn.CrossEntropyLoss()(model(x), y).backward()
    opt.step()
    log(rank, f"step {step} done")
log(rank, f"weights {weights_digest(model.module)}")
finish()
