"""breakpoint() in a training script: run with PYTHONBREAKPOINT=inspector.set_trace."""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
x = torch.randn(3, 4)
print("before the breakpoint")
breakpoint()
out = model(x)
print("output shape", tuple(out.shape))
out = model(x)
print("second pass done")
