"""Activation scale, saturation, dead units and gradient findings: named where they start."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import inspector
from tests.broken_models import NaNGradInFeat
from tests.helpers import square_loss
from tests.models import ZOO

CE = nn.CrossEntropyLoss()


def _codes(t: inspector.Trace, code: str) -> list[inspector.Diagnosis]:
    return [f for f in t.findings if f.code == code]


def _stack(act: type[nn.Module], n: int, width: int = 64, std: float | None = None) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(n):
        linear = nn.Linear(width, width)
        if std is not None:
            nn.init.normal_(linear.weight, std=std)
        layers += [linear, act()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(16, 64, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_one_layer_with_a_huge_init_is_named() -> None:
    torch.manual_seed(0)
    model = _stack(nn.ReLU, 2)
    nn.init.normal_(model[2].weight, std=3.0)
    x, _ = _batch()
    (found,) = _codes(inspector.trace(model, x), "activation-scale")
    assert found.module == "2" and "multiplies the activation scale by" in found.summary
    assert "threshold scale_step: 10x" in found.details[0]


def test_a_slow_drift_over_depth_is_named_where_it_starts() -> None:
    torch.manual_seed(0)
    model = _stack(nn.ReLU, 10, std=0.5)  # about x2.3 per layer, x9000 in all
    x, _ = _batch()
    (found,) = _codes(inspector.trace(model, x), "activation-scale")
    assert found.module == "0" and found.summary.startswith("activations grow")
    assert "threshold scale_depth: 1000x" in found.details[0]


def test_saturated_sigmoid() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 1))
    nn.init.normal_(model[0].weight, std=2.0)
    x, _ = _batch()
    t = inspector.trace(model, x)
    (found,) = _codes(t, "saturated")
    assert found.module == "1" and "threshold saturated: 50%" in found.details[0]
    assert t.find("1").units is not None and t.find("1").units.saturated > 0.5  # type: ignore[union-attr, operator]
    healthy = inspector.trace(nn.Sequential(nn.Linear(64, 32), nn.Sigmoid()), x)
    assert _codes(healthy, "saturated") == []


def test_dead_channels_are_listed_at_the_first_layer_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
    )  # fmt: skip
    with torch.no_grad():
        model[0].bias[[1, 4, 5, 9, 12]] = -100.0  # 5 of 16 channels never fire
        model[0].bias[[0, 2]] = -1.0  # mostly off: not dead
    t = inspector.trace(model, torch.randn(4, 3, 8, 8))
    (found,) = _codes(t, "dead-units")
    assert found.module == "1" and found.summary == "5 of 16 channels of 1 are dead"
    assert found.details[0].startswith("channels 1, 4, 5, 9, 12 are zero")


def test_the_unit_thresholds_are_parameters() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        model[0].bias[[1, 4, 5]] = -100.0  # 3 of 16: under the default 25%
        model[0].bias[6:] = -0.5
    x = torch.randn(4, 3, 8, 8)
    assert _codes(inspector.trace(model, x), "dead-units") == []
    lenient = inspector.trace(model, x, thresholds=inspector.Thresholds(dead_units=0.1))
    (found,) = _codes(lenient, "dead-units")
    assert "threshold dead_units 10%" in found.details[0]


def test_a_nan_gradient_made_in_feat_is_reported_at_feat_only() -> None:
    torch.manual_seed(0)
    model = NaNGradInFeat()
    with torch.no_grad():
        model.pre.weight.zero_()
        model.pre.bias.zero_()  # every row of pre's output is 0: sqrt'(0) = inf
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    t = inspector.trace(model, x, loss_fn=CE, target=y, backward=True)
    assert t.error is None and all(f.code != "nan-origin" for f in t.findings)  # forward fine
    (found,) = _codes(t, "nan-gradient")
    assert found.module == "feat" and "backward of feat (RowNorm)" in found.summary
    assert "its output is finite" in found.details[0]
    assert not t.find("pre").grad.finite  # type: ignore[union-attr]  # downstream, not named


def test_vanishing_gradients_in_a_deep_sigmoid_stack() -> None:
    torch.manual_seed(0)
    x, y = _batch()
    t = inspector.trace(_stack(nn.Sigmoid, 12), x, loss_fn=CE, target=y, backward=True)
    (found,) = _codes(t, "vanishing-gradient")
    assert found.summary.startswith("vanishing gradients: from ")
    assert "threshold grad_vanish: 0.0001" in found.details[0]
    layer = int(found.module)
    rel = t.find(found.module).grad.relative()  # type: ignore[union-attr]
    last = t.find("24").grad.relative()  # type: ignore[union-attr]
    assert rel is not None and last is not None and rel / last < 1e-4
    # the layer after it (nearer the loss) is still above the threshold
    after = t.find(str(layer + 2)).grad.relative()  # type: ignore[union-attr]
    assert after is not None and after / last >= 1e-4


def test_exploding_gradients_are_named_nearest_the_loss() -> None:
    torch.manual_seed(0)
    x, y = _batch()
    model = _stack(nn.ReLU, 10, std=0.5)
    t = inspector.trace(model, x, loss_fn=CE, target=y, backward=True)
    (found,) = _codes(t, "exploding-gradient")
    assert found.module == "20" and "threshold grad_explode: 100" in found.details[0]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_no_numerical_finding_on_the_healthy_zoo_with_backward(mode: str) -> None:
    noisy = []
    for case in ZOO.values():
        if case.name in ("empty_batch", "lazy_linear"):
            continue
        model, args, kwargs = case.build()
        getattr(model, mode)()
        loss_fn = case.loss_fn() if case.loss_fn else square_loss
        target = case.target() if case.target else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = inspector.trace(
                model, *args, loss_fn=loss_fn, target=target, backward=True, **kwargs
            )
        noisy.extend(f"{case.name}: {f}" for f in t.findings)
    assert noisy == []
