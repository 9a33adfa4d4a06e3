"""The bundled demo: a broken CNN of the kind users bring (two stray views, fc1 sized for
another network), shipped inside the package so that `torch-inspector demo` and the API tour
work from an installed wheel.

    from inspector.demo import build
    model, (x,) = build()
    print(inspector.trace(model, x).diagnosis)

The model's source is compiled under its own file name, FILENAME, outside the package: the
inspector takes every frame inside its own package for library code and never shows one as
the user's line, and the demo exists to show that line. Its lines are registered with
linecache, so tracebacks and the debugger's source view show them as they would a file's.
"""

from __future__ import annotations

import linecache
from typing import Any

import torch
from torch import nn

FILENAME = "<demo>/seed_cnn.py"  # the angle brackets: no file by this name

SOURCE = '''\
"""The broken CNN users bring us: two stray views, and fc1 sized for another network.

`python -m inspector demo` opens the debugger on it: step with s, n, r, c.
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
'''


def _register_source() -> None:
    """Make the source readable by file name (again, if someone cleared linecache). An mtime
    of None keeps linecache.checkcache from dropping an entry that has no file on disk."""
    lines = SOURCE.splitlines(keepends=True)
    linecache.cache[FILENAME] = (len(SOURCE), None, lines, FILENAME)


def _compile() -> dict[str, Any]:
    _register_source()
    namespace: dict[str, Any] = {"__name__": __name__, "__file__": FILENAME}
    exec(compile(SOURCE, FILENAME, "exec"), namespace)
    return namespace


SeedCNN: type[nn.Module] = _compile()["SeedCNN"]  # its __module__ is this module


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The demo model and its input: (SeedCNN(), (a (4, 3, 32, 32) batch,)), seeded."""
    _register_source()
    torch.manual_seed(0)
    return SeedCNN(), (torch.randn(4, 3, 32, 32),)
