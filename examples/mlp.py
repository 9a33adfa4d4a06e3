"""A healthy MLP classifier with a cross-entropy loss: a calm trace to compare against."""

import torch
from torch import nn


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 128),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(128, 10),
    )
    return model, (torch.randn(8, 1, 28, 28),)


loss_fn = nn.CrossEntropyLoss()


def target() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 10, (8,))


if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
