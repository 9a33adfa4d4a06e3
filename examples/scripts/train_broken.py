"""A training script that fails on its second step: a batch that does not fit the model."""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
criterion = nn.CrossEntropyLoss()
batches = [torch.randn(4, 8), torch.randn(4, 10)]  # the second batch has 10 features
for step, x in enumerate(batches):
    loss = criterion(model(x), torch.zeros(4, dtype=torch.long))
    print(f"step {step} loss {loss.item():.4f}")
