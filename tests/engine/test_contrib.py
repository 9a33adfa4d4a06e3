"""contributions(): exact decompositions, gradient x activation, integrated gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import inspector
from tests.models import ZOO


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (p, m) for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d))
    ]


def captured(model: nn.Module, module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    seen: list[tuple] = []
    handle = module.register_forward_hook(
        lambda m, a, o: seen.append((a[0], o)) if not seen else None
    )
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize(
    "name",
    ["mlp", "resnet_blocks", "conv_upsample", "tiny_gpt", "cnn_cross_entropy", "reused_modules"],
)
def test_linear_terms_rebuild_every_linear_and_conv_output(name: str) -> None:
    model, args, kwargs = ZOO[name].build()
    for path, module in linear_layers(model):
        _, out = captured(model, module, args, kwargs)
        c = inspector.contributions(model, *args, layer=path, method="linear", **kwargs)
        bias = (
            c.bias
            if c.bias is not None
            else torch.zeros(out.shape[1 if isinstance(module, (nn.Conv1d, nn.Conv2d)) else -1])
        )
        if isinstance(module, nn.Linear):
            rebuilt = c.values.sum(-1) + bias
            tol = 1e-5
        else:
            shape = (1, -1) + (1,) * (out.dim() - 2)
            rebuilt = c.values.sum(2) + bias.view(shape)
            tol = 1e-4
        assert torch.allclose(rebuilt, out, atol=tol, rtol=tol), (name, path)


def test_grad_x_act_equals_an_independent_autograd_computation() -> None:
    model, args, _ = ZOO["cnn_cross_entropy"].build()
    layer = (
        "features.0" if "features.0" in dict(model.named_modules()) else linear_layers(model)[0][0]
    )
    module = dict(model.named_modules())[layer]
    c = inspector.contributions(model, *args, layer=layer, target=2)
    store: dict[str, torch.Tensor] = {}

    def keep(m: nn.Module, a: tuple, o: torch.Tensor) -> torch.Tensor:
        o = o.detach().requires_grad_(True)
        store["a"] = o
        return o

    handle = module.register_forward_hook(keep)
    try:
        out = model(*args)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out[:, 2].sum(), store["a"])
    assert torch.allclose(c.values, grad * store["a"], atol=1e-7)
    assert c.target == "output 2"


@pytest.mark.parametrize("name", ["mlp", "cnn_cross_entropy"])
def test_integrated_gradients_is_complete_on_every_layer(name: str) -> None:
    # Along the path the gradient of a ReLU network jumps at each kink: uniform midpoints
    # left 1.8% on the MLP's first layer at 64 steps; refining where it misses leaves 0.03%.
    model, args, kwargs = ZOO[name].build()
    for path, module in model.named_modules():
        if not path or list(module.children()):
            continue
        seen: list[tuple[int, int]] = []
        c = inspector.contributions(
            model, *args, layer=path, method="integrated_gradients", steps=64,
            progress=lambda d, t, seen=seen: seen.append((d, t)), **kwargs,
        )  # fmt: skip
        assert c.gap is not None and c.gap <= 1e-2, (name, path, c.gap)
        assert seen[-1] == (64, 64) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert c.values.shape == _output_shape(model, module, args, kwargs)


def test_integrated_gradients_refines_where_the_path_bends() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 3))  # fmt: skip
    x = torch.randn(8, 4)
    coarse = inspector.contributions(model, x, layer="0", method="integrated_gradients", steps=16)
    fine = inspector.contributions(model, x, layer="0", method="integrated_gradients", steps=64)
    assert fine.gap is not None and coarse.gap is not None
    assert fine.gap <= coarse.gap and fine.gap <= 1e-2


def _output_shape(model: nn.Module, module: nn.Module, args: tuple, kwargs: dict) -> torch.Size:
    return captured(model, module, args, kwargs)[1].shape


def test_no_side_effects_in_train_mode() -> None:
    model, args, _ = ZOO["batchnorm_dropout_train"].build()
    assert model.training
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    for method in ("linear", "grad_x_act", "integrated_gradients"):
        layer = linear_layers(model)[0][0]
        inspector.contributions(model, *args, layer=layer, method=method, steps=4)
    assert torch.equal(torch.random.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_reused_module_picks_the_call() -> None:
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    x = torch.randn(2, 4)
    first = inspector.contributions(model, x, layer="0", method="linear", call_index=0)
    second = inspector.contributions(model, x, layer="0", method="linear", call_index=1)
    assert not torch.allclose(first.values, second.values)
    h = torch.tanh(shared(x))
    assert torch.allclose(second.values.sum(-1) + second.bias, shared(h), atol=1e-6)
    with pytest.raises(ValueError, match="called 2 time"):
        inspector.contributions(model, x, layer="0", call_index=2)


def test_inner_neuron_target_and_top_shares() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    c = inspector.contributions(model, torch.randn(1, 5), layer="0", target=("2", 1))
    assert c.target == "2[1]"
    terms = c.top(6)
    assert [abs(t.value) for t in terms] == sorted((abs(t.value) for t in terms), reverse=True)
    assert sum(abs(t.share) for t in terms) == pytest.approx(1.0)


def test_clear_errors() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(ValueError, match="no module 'fc9'"):
        inspector.contributions(model, torch.ones(1, 2), layer="fc9")
    with pytest.raises(ValueError, match="unknown method 'shap'"):
        inspector.contributions(model, torch.ones(1, 2), layer="0", method="shap")
    with pytest.raises(ValueError, match='use method="grad_x_act"'):
        inspector.contributions(model, torch.ones(1, 2), layer="1", method="linear")


def test_grad_x_act_equals_captum_when_installed() -> None:
    captum_attr = pytest.importorskip("captum.attr")
    model, args, _ = ZOO["mlp"].build()
    path, module = linear_layers(model)[1]
    ours = inspector.contributions(model, *args, layer=path, target=3)
    theirs = captum_attr.LayerGradientXActivation(model, module).attribute(args[0], target=3)
    assert torch.allclose(ours.values, theirs, atol=1e-7)


class RunningAverage(nn.Module):
    """Reassigns its buffer (custom norms, EMA trackers) and counts its calls."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("avg", torch.zeros(n))
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        if self.training:
            self.avg = 0.9 * self.avg + 0.1 * x.detach().mean(0)
        return x - self.avg


@pytest.mark.parametrize("method", ["linear", "grad_x_act", "integrated_gradients"])
def test_reassigned_buffers_and_counters_are_as_before(method: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), RunningAverage(8), nn.Linear(8, 3)).train()
    x = torch.randn(4, 6)
    avg, saved_x = model[1].avg, x.clone()
    inspector.contributions(model, x, layer="0", method=method, steps=8)
    assert model[1].avg is avg and torch.equal(avg, torch.zeros(8))
    assert model[1].steps == 0 and set(vars(model[1])) == set(vars(RunningAverage(8)))
    assert torch.equal(x, saved_x)
