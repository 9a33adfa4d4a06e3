"""One corrupt pixel (Inf) in rank 1's batch at step 1: rank 1's loss goes NaN, the gradient
all-reduce averages its NaN gradients into both ranks' weights, and at step 2 rank 0's own
forward makes NaN from a finite batch. Run under `run --break '* if nan'`."""

import torch
from jobkit import SmallCNN, batch, finish, log, setup
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

rank, world = setup()
torch.manual_seed(0)
model = DDP(SmallCNN())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
crit = nn.CrossEntropyLoss()
for step in range(3):
    x, y = batch(rank, step)
    if (rank, step) == (1, 1):
        x[3, 0, 5, 5] = float("inf")
    opt.zero_grad()
    loss = crit(model(x), y)
    loss.backward()
    opt.step()
    log(rank, f"step {step} loss {loss.item():.4f}")
finish()
