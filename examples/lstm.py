"""A healthy LSTM sequence classifier over batch-first data, returning logits and (h, c)."""

import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, features: int = 8, hidden: int = 32, classes: int = 5) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    return SequenceClassifier().eval(), (torch.randn(4, 12, 8),)


if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
