"""check() writes nothing into the user's objects, never raises and reports no false errors."""

from __future__ import annotations

import copy
import warnings
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import inspector
from inspector.engine.dryrun.fake import is_fake

Pair = namedtuple("Pair", ["x", "y"])


class CachedTable(nn.Module):
    """Builds a table on first use and keeps it: rotary tables and causal masks do this."""

    def __init__(self) -> None:
        super().__init__()
        self.table: torch.Tensor | None = None
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None or self.table.shape[0] < x.shape[1]:
            self.table = torch.cos(torch.arange(x.shape[1], dtype=torch.float32))[:, None]
        return self.proj(x) * self.table[: x.shape[1]]


class HeadOnFirstUse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "head"):
            self.head = nn.Linear(3, 3)
        return self.head(self.body(x))


def fakes_in(model: nn.Module) -> list[str]:
    found = [n for n, t in model.state_dict(keep_vars=True).items() if is_fake(t)]
    for path, m in model.named_modules():
        found += [f"{path}.{k}" for k, v in vars(m).items() if is_fake(v)]
    return found


def test_a_table_cached_by_the_forward_is_not_left_fake() -> None:
    model, x = CachedTable(), torch.randn(2, 5, 8)
    assert not inspector.check(model, x)
    assert model.table is None and not fakes_in(model)
    assert not is_fake(model(x)) and model(x).sum().item() == model(x).sum().item()


def test_a_submodule_built_on_first_use_is_not_kept() -> None:
    model = HeadOnFirstUse()
    inspector.check(model, torch.randn(2, 3))
    assert not hasattr(model, "head") and "head" not in model._modules
    assert not is_fake(model(torch.randn(2, 3)))


def test_a_hook_that_stores_activations_runs_and_keeps_nothing_fake() -> None:
    store: dict[str, torch.Tensor] = {}
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    net[0].register_forward_hook(lambda m, a, out: store.__setitem__("fc", out))
    inspector.check(net, torch.randn(2, 4))
    assert store == {}
    net(torch.randn(2, 4))
    assert not is_fake(store["fc"])


def test_a_real_tensor_outside_the_model_is_not_written_in_place() -> None:
    counter = torch.zeros(())

    class Counts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            counter.add_(1)
            return x * 2

    inspector.check(Counts(), torch.randn(2))
    assert float(counter) == 0.0


def test_leaf_forwards_are_unwrapped_even_after_an_interrupt() -> None:
    class Interrupted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.fc(x)
            raise KeyboardInterrupt

    model = Interrupted()
    weight = model.fc.weight
    with pytest.raises(KeyboardInterrupt):
        inspector.check(model, torch.randn(1, 2))
    assert "forward" not in vars(model.fc) and model.fc.weight is weight
    assert not model.fc._forward_hooks and not model.fc._forward_pre_hooks


# -- inputs -----------------------------------------------------------------------------------


def test_namedtuple_and_dataclass_inputs_keep_their_type() -> None:
    @dataclass
    class Batch:
        x: torch.Tensor
        size: tuple[int, int]

    class Takes(nn.Module):
        def forward(self, x: torch.Tensor, z: Pair, batch: Batch) -> torch.Tensor:
            assert isinstance(z, Pair) and isinstance(batch, Batch)
            return Pair(x, x).x + torch.ones(z.x) + batch.x.sum() * batch.size[0]

    x = torch.rand(2, 1, 4, 4)
    batch = Batch(torch.ones(3), (2, 2))
    result = inspector.check(Takes(), x, Pair((2, 1, 4, 4), (1,)), batch=batch)
    assert not result.errors and batch.size == (2, 2) and not is_fake(batch.x)


def test_tuples_of_ints_beside_a_tensor_or_as_keywords_are_values() -> None:
    class Resize(nn.Module):
        def forward(self, x: torch.Tensor, size: tuple[int, int] = (16, 16)) -> torch.Tensor:
            return F.interpolate(x, size=size, mode="bilinear")

    x = torch.randn(2, 3, 32, 32)
    for result in (inspector.check(Resize(), x, size=(8, 8)), inspector.check(Resize(), x, (8, 8))):
        assert not list(result) and result.calls[0].outputs.shape == (2, 3, 8, 8)
    shapes_only = inspector.check(nn.Linear(4, 2), (3, 4))  # no tensor given: a shape
    assert not shapes_only and shapes_only.calls[0].inputs[0].shape == (3, 4)


@pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nested.nested_tensor([torch.randn(2, 4), torch.randn(5, 4)]),
        lambda: torch.nested.nested_tensor(
            [torch.randn(2, 4), torch.randn(5, 4)], layout=torch.jagged
        ),
        lambda: torch.quantize_per_tensor(torch.randn(4), 0.05, 3, torch.quint8),
        lambda: torch.randn(4, 4).to_sparse(),
    ],
    ids=["nested", "jagged", "quantized", "sparse"],
)
def test_inputs_without_a_stand_in_are_reported_not_verified(make) -> None:  # type: ignore[no-untyped-def]
    result = inspector.check(nn.Identity(), make())
    assert [f.code for f in result] == ["not-verified"] and not result.errors


@pytest.mark.parametrize("how", ["trace", "script"])
def test_a_torchscript_root_is_reported_not_verified(how: str) -> None:
    x = torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linear = nn.Linear(4, 2)
        model = torch.jit.trace(linear, x) if how == "trace" else torch.jit.script(linear)
    result = inspector.check(model, x)
    assert [f.code for f in result] == ["not-verified"] and "TorchScript" in result[0].summary


def test_a_torchscript_child_runs_whole_on_the_fakes_and_keeps_its_state() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = torch.jit.script(nn.BatchNorm1d(4))
    model = nn.Sequential(nn.Linear(3, 4), norm, nn.Linear(4, 2)).train()
    mean, count = norm.running_mean.clone(), int(norm.num_batches_tracked)
    result = inspector.check(model, torch.randn(5, 3))
    assert not list(result) and result.calls[0].outputs.shape == (5, 2)
    assert torch.equal(norm.running_mean, mean) and int(norm.num_batches_tracked) == count
    wrong = inspector.check(model, torch.randn(5, 7))
    assert [f.module for f in wrong.errors] == ["0"]


# -- forwards that run for real ---------------------------------------------------------------


def test_a_forward_that_takes_gradients_is_not_an_error() -> None:
    class InnerStep(nn.Module):  # one MAML inner step
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 4) * 0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(((x @ self.w) ** 2).mean(), [self.w], create_graph=True)
            return x @ (self.w - 0.01 * g)

    model = InnerStep()
    result = inspector.check(model, torch.rand(4, 8))
    assert not list(result) and result.calls[0].outputs.shape == (4, 4)
    assert model.w.grad is None


def test_a_parameter_handed_to_another_module_is_not_an_error() -> None:
    class Shares(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            layer = nn.Linear(5, 5)
            layer.weight, layer.bias = self.fc.weight, self.fc.bias
            return layer(self.fc(x))

    model = Shares()
    weight = model.fc.weight
    assert not list(inspector.check(model, torch.rand(5, 5)))
    assert model.fc.weight is weight and not is_fake(weight)


def test_a_forward_that_returns_numpy_stops_the_dry_run_without_an_error() -> None:
    class ToNumpy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, inp: np.ndarray) -> np.ndarray:
            return self.lin(torch.from_numpy(inp)).detach().numpy()

    x = np.ones(3, dtype=np.float32)
    result = inspector.check(ToNumpy(), x)
    assert not result.errors and result.stopped is not None and "numpy" in result.stopped
    assert (x == 1).all()


def test_grouped_mm_without_a_fake_kernel_goes_on_with_its_declared_output() -> None:
    if not hasattr(F, "grouped_mm"):
        pytest.skip("this torch has no grouped_mm")

    class Experts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 64, 32) * 0.02)
            self.out = nn.Linear(32, 2)

        def forward(self, x: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
            return self.out(F.grouped_mm(x, self.w, offs=offs))

    offs = torch.tensor([4, 8, 12, 16], dtype=torch.int32)
    result = inspector.check(Experts(), torch.randn(16, 64), offs)
    assert not result.errors and [f.code for f in result] == ["not-verified"]
    assert "grouped_mm" in result[0].summary and "(16, 32)" in result[0].summary
    assert result.calls[0].outputs.shape == (16, 2)


# -- Hugging Face -----------------------------------------------------------------------------


def test_a_dynamic_cache_passed_in_is_never_written() -> None:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=100, max_position_embeddings=64,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(3, 100, (2, 6))
    with torch.no_grad():
        first = model(input_ids=ids, use_cache=True)
    cache, step = first.past_key_values, first.logits[:, -1:].argmax(-1)
    saved = copy.deepcopy(cache)
    keys = [layer.keys for layer in cache.layers]
    result = inspector.check(model, input_ids=step, past_key_values=cache)
    assert not result.errors, [str(f) for f in result]
    assert [layer.keys for layer in cache.layers] == keys  # the same tensor objects
    assert all(torch.equal(a.keys, b.keys) for a, b in zip(cache.layers, saved.layers, strict=True))
    with torch.no_grad():
        out = model(input_ids=step, past_key_values=cache).logits
        ref = model(input_ids=step, past_key_values=saved).logits
    assert not is_fake(out) and torch.equal(out, ref)
