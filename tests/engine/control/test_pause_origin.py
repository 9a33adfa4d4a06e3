"""Where a NaN/Inf breakpoint's values came from: the batch, the weights, or a module."""

from __future__ import annotations

import torch
from torch import nn

from inspector.engine.control.debugger import Debugger, Finished
from inspector.engine.control.stepper import Pause


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 10))  # fmt: skip


def _first_stop(model: nn.Module, x: torch.Tensor, condition: str = "* if nan") -> Pause:
    d = Debugger(model, x, breakpoints=[condition], stop_at_start=False)
    p = d.start()
    assert isinstance(p, Pause), p
    assert isinstance(d.cont(), Finished)
    return p


def test_a_corrupt_sample_is_named_as_the_input_not_a_modules_code() -> None:
    x = torch.randn(2, 3, 8, 8)
    x[1, 0, 5, 5] = float("inf")  # one pixel of one sample
    p = _first_stop(_cnn(), x, "* if inf")
    d = p.diagnosis
    assert d is not None and d.code == "nan-input", d
    assert "arrives with the input" in d.summary and d.module == ""
    assert "(2, 3, 8, 8) with 0 NaN and 1 Inf of 384 values" in " ".join(d.details)
    assert "own code" not in d.summary  # it was: "NaN/Inf first appears in (root)'s own code"


def test_weights_already_non_finite_are_named_as_the_origin() -> None:
    model = _cnn()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")  # as a NaN update would leave it
    before = model[0].weight.clone()
    p = _first_stop(model, torch.randn(2, 3, 8, 8))
    d = p.diagnosis
    assert d is not None and d.code == "nan-weights", d
    assert d.module == "0" and "weights are already non-finite" in d.summary
    assert "weight 1/108" in " ".join(d.details)
    assert any("grad-nan" in f for f in d.fixes)
    assert torch.equal(model[0].weight.isnan(), before.isnan())  # only read


def test_a_module_that_makes_nan_from_finite_values_is_still_the_origin() -> None:
    class LogOfNegatives(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x - 10)

    model = nn.Sequential(nn.Linear(4, 4), LogOfNegatives(), nn.Linear(4, 2))
    p = _first_stop(model, torch.randn(3, 4))
    d = p.diagnosis
    assert d is not None and d.code == "nan-origin" and d.module == "1", d
