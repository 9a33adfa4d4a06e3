"""An MNIST GAN with two bugs: the generator ends in 10 features where the discriminator
expects 28*28 = 784, and BCELoss is given the real images as its target.

Run it as a script to open the inspector on it.
"""

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 28 * 28)
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 28 * 28)
        return torch.sigmoid(self.net(x))


class GAN(nn.Module):
    """The forward under test: D(G(real_images))."""

    def __init__(self) -> None:
        super().__init__()
        self.G = Generator()
        self.D = Discriminator()

    def forward(self, real_images: torch.Tensor) -> torch.Tensor:
        return self.D(self.G(real_images))


loss_fn = nn.BCELoss()


def target() -> torch.Tensor:
    """The bug: the real images passed as the BCE target instead of real/fake labels."""
    torch.manual_seed(1)
    return torch.rand(16, 1, 28, 28)


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    return GAN(), (torch.rand(16, 1, 28, 28),)


if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
