"""A deep sigmoid MLP whose gradients vanish: the first layers learn almost nothing.

Twelve Linear -> Sigmoid layers. Each sigmoid passes at most a quarter of the gradient back,
so the first layer's update is about 1e-8 of the last one's. Opened as a script (or with
`python -m inspector report examples/deep_sigmoid.py`) it runs the backward pass too and
names where the gradient vanishes; step on past the loss to walk the backward pass.
"""

import torch
from torch import nn

DEPTH = 12


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for _ in range(DEPTH):
        layers += [nn.Linear(width, 64), nn.Sigmoid()]
        width = 64
    layers.append(nn.Linear(64, 10))
    return nn.Sequential(*layers), (torch.randn(16, 1, 28, 28),)


loss_fn = nn.CrossEntropyLoss()
backward = True  # record gradients: the bug is in the backward pass


def target() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 10, (16,))


if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
