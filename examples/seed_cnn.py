"""The broken CNN users bring us: two stray views, and fc1 sized for another network.

Run it as a script to open the inspector on it, or `python -m inspector demo`.
"""

import torch
from torch import nn


class SeedCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 4 * 4, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))
        x = x.view(-1, 3 * 3 * 3)
        x = self.pool(self.conv2(x))
        x = x.view(-1, 6 * 6 * 6)
        x = self.fc1(x)
        return self.fc2(x)


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    return SeedCNN(), (torch.randn(4, 3, 32, 32),)


if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
