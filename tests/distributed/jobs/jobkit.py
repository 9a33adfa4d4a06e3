"""What the test jobs share: a small CNN with a BatchNorm (so DDP broadcasts buffers in every
forward), per-rank batches from private generators, digests of the weights, rank-tagged logs."""

from __future__ import annotations

import datetime
import hashlib
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, hidden: int = 32, img: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * (img // 4) ** 2, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def setup() -> tuple[int, int]:
    """Join the job's gloo group. PG_TIMEOUT (s) bounds every collective: a desync fails in
    seconds rather than torch's 30 minutes."""
    seconds = float(os.environ.get("PG_TIMEOUT", "20"))
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=seconds))
    torch.set_num_threads(1)
    return dist.get_rank(), dist.get_world_size()


def batch(rank: int, step: int, img: int = 16, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(size, 3, img, img, generator=gen), torch.randint(
        0, 10, (size,), generator=gen
    )


def digest(tensors: list[tuple[str, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def weights_digest(model: nn.Module) -> str:
    return digest(list(model.named_parameters()))


def state_digest(model: nn.Module) -> str:
    return digest(list(model.state_dict().items()))


def log(rank: int, *msg: object) -> None:
    print(f"[rank{rank}]", *msg, flush=True)


def finish() -> None:
    """Leave the group together: gloo can abort a rank ("terminate called without an active
    exception") that tears its group down while a peer still talks to it. NO_BARRIER=1 leaves
    without it (bench/dist_jobs.py counts those aborts)."""
    if os.environ.get("NO_BARRIER") != "1":
        dist.barrier()
    dist.destroy_process_group()
