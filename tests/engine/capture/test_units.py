"""Dead and saturated units read only where the exact range says they can be there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspector.engine.capture.activity import SATURATION_MARGIN, describe_units
from inspector.engine.capture.describe import Describer
from inspector.engine.records import Units


def _units(module: nn.Module, x: torch.Tensor) -> tuple[Units | None, torch.Tensor]:
    out = module(x)
    return describe_units(module, out, Describer().tensor(out, 0)), out


@pytest.mark.parametrize("scale", [0.01, 1.0, 3.0, 30.0])
@pytest.mark.parametrize("module", [nn.Tanh(), nn.Sigmoid()])
def test_saturation_is_the_count_near_the_bounds(module: nn.Module, scale: float) -> None:
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) * scale
    units, out = _units(module, x)
    low, high = (-1.0, 1.0) if isinstance(module, nn.Tanh) else (0.0, 1.0)
    middle, half = (low + high) / 2, (high - low) / 2
    near = int(torch.count_nonzero((out - middle).abs() >= half - SATURATION_MARGIN))
    assert units is not None and units.saturated == near / out.numel()


def test_a_value_right_at_the_margin_is_counted() -> None:
    x = torch.zeros(4, 8)
    x[0, 0] = torch.atanh(torch.tensor(1 - SATURATION_MARGIN)) + 1e-3
    units, _ = _units(nn.Tanh(), x)
    assert units is not None and units.saturated == 1 / 32


@pytest.mark.parametrize("module", [nn.ReLU(), nn.ReLU6(), nn.Threshold(0.5, -2.0)])
def test_dead_units_are_the_all_zero_ones(module: nn.Module) -> None:
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(2)) - 1.5
    x[:, 2] = -5.0  # dead for ReLU and ReLU6 (-2 for the Threshold: not zero)
    x[:, 4] = 0.0
    units, out = _units(module, x)
    hi, lo = out.amax(dim=0), out.amin(dim=0)
    expected = tuple(int(i) for i in torch.nonzero((hi == 0) & (lo == 0)).flatten())
    assert units is not None and units.dead == expected
