"""Rank 1 skips the aux head at step 1 (a branch that depends on the data): DDP, without
find_unused_parameters, fails at step 2's forward with parameter indices. Every forward is
in `with inspector.explain():`."""

import torch
from jobkit import SmallCNN, batch, log, setup
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import inspector


class WithAux(SmallCNN):
    def __init__(self) -> None:
        super().__init__()
        self.aux = nn.Linear(10, 10)

    def forward(self, x, use_aux):
        out = super().forward(x)
        return out + self.aux(out) if use_aux else out


rank, world = setup()
torch.manual_seed(0)
model = DDP(WithAux())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
crit = nn.CrossEntropyLoss()
for step in range(3):
    x, y = batch(rank, step)
    opt.zero_grad()
    with inspector.explain():
        loss = crit(model(x, not (rank == 1 and step == 1)), y)
    loss.backward()
    opt.step()
    log(rank, f"step {step} done")
