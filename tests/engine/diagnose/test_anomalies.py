"""Where a NaN starts, dead and constant layers: one finding at the origin, none after it."""

from __future__ import annotations

import torch
from torch import nn

import inspector
from inspector.engine.diagnose.anomalies import Thresholds, dead_and_constant
from tests.broken_models import MakesNaN


class LogFeature(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)  # NaN for the negative entries


class NaNInFeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(4, 8)
        self.feat = LogFeature()
        self.post = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.feat(self.pre(x)))


def _anomalies(t: inspector.Trace, code: str) -> list[inspector.Diagnosis]:
    return [f for f in t.findings if f.code == code]


def test_nan_made_in_feat_is_reported_at_feat_only() -> None:
    torch.manual_seed(0)
    t = inspector.trace(NaNInFeat(), torch.randn(16, 4))
    found = _anomalies(t, "nan-origin")
    assert [f.module for f in found] == ["feat"]
    assert found[0].summary == "NaN first appears in feat (LogFeature)"
    assert "negative values" in " ".join(found[0].details)
    assert found[0].line is not None and "self.feat(self.pre(x))" in found[0].line.text


def test_nan_made_in_the_parents_own_code_points_at_its_line() -> None:

    torch.manual_seed(0)
    t = inspector.trace(MakesNaN(), torch.randn(8, 4))
    (found,) = _anomalies(t, "nan-origin")
    assert found.module == "" and "before feat" in found.summary
    assert found.line is not None and "torch.log(h)" in found.line.text


def test_inf_from_an_overflowing_exp() -> None:
    class Exp(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.exp(x)

    model = nn.Sequential(nn.Linear(3, 3), Exp(), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.fill_(100.0)
    t = inspector.trace(model, torch.ones(2, 3))
    (found,) = _anomalies(t, "nan-origin")
    assert found.module == "1" and found.summary.startswith("Inf first appears in 1 (Exp)")
    assert "exp overflows" in " ".join(found.details)


def test_dead_relu_is_named_once_and_constant_outputs_too() -> None:
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 16), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
        model[2].bias.fill_(0.5)  # fed only zeros, it outputs its bias: one value everywhere
    t = inspector.trace(model, torch.randn(4, 8))
    assert [f.module for f in _anomalies(t, "dead-units")] == ["1"]
    constant = _anomalies(t, "constant-output")
    assert [f.module for f in constant] == ["2"] and "(0.5)" in constant[0].summary


def test_the_dead_fraction_threshold_is_a_parameter() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 100), nn.ReLU())
    with torch.no_grad():
        model[0].bias.fill_(-2.0)  # most units off, a few on
    t = inspector.trace(model, torch.randn(4, 8))
    assert dead_and_constant(t) == []
    lenient = dead_and_constant(t, Thresholds(dead_fraction=0.8))
    assert [f.module for f in lenient] == ["1"] and "80%" in lenient[0].details[0]
