"""FSDP2 on 2 ranks: each layer with parameters sharded, then the root; 3 steps. Mode plain
trains alone; mode attach trains with a session recording gradients and prints, per step,
the parameter gradient norms it recorded for fc1. Both print the final weights' digest."""

import hashlib
import sys

import torch
from jobkit import SmallCNN, batch, finish, log, setup
from torch import nn
from torch.distributed.fsdp import fully_shard

import inspector

mode = sys.argv[1] if len(sys.argv) > 1 else "plain"
rank, world = setup()
torch.manual_seed(0)
model = SmallCNN()
for layer in (model.conv1, model.conv2, model.fc1, model.fc2):
    fully_shard(layer)
fully_shard(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
crit = nn.CrossEntropyLoss()
session = inspector.attach(model, gradients=True) if mode == "attach" else None
for step in range(3):
    x, y = batch(rank, step)
    opt.zero_grad()
    loss = crit(model(x), y)
    loss.backward()
    if session is not None:
        fc1 = next(c for c in session.calls if c.path.endswith("fc1"))
        names = [name for name, _, _ in fc1.grad.params] if fc1.grad else []
        log(rank, f"step {step} fc1 grads {names}")
    opt.step()
if session is not None:
    session.detach()
full = hashlib.sha256()  # every rank gathers the same full weights (a collective each)
for name, param in model.named_parameters():
    full.update(name.encode() + param.full_tensor().detach().numpy().tobytes())
log(rank, f"weights {full.hexdigest()[:16]}")
finish()
