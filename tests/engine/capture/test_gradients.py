"""trace(backward=True): gradient stats equal autograd's, and nothing the user sees changes."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine import tensors_in
from tests.helpers import square_loss
from tests.models import ZOO, _tensors

CASES = [c for c in ZOO.values() if c.name not in ("empty_batch", "lazy_linear")]


def _loss(case: Any) -> tuple[Any, Any]:
    if case.loss_fn is not None:
        return case.loss_fn(), case.target() if case.target else None
    return square_loss, None


def _close(a: float, b: float, rel: float = 1e-5, abs_: float = 1e-7) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _independent(case: Any, mode: str) -> tuple[dict, dict, torch.Tensor]:
    """Output gradients (retain_grad) and own-parameter gradient norms, by path, plain torch."""
    model, args, kwargs = case.build()
    getattr(model, mode)()
    loss_fn, target = _loss(case)
    names = {m: p for p, m in model.named_modules()}
    kept: dict[tuple[str, int], list[tuple[torch.Tensor, int]]] = {}
    counts: dict[str, int] = {}

    def post(module: nn.Module, a: Any, out: Any) -> None:
        path = names[module]
        index = counts.get(path, 0)
        counts[path] = index + 1
        tensors = []
        for t in _tensors(out):
            if t.requires_grad and t.is_floating_point():
                t.retain_grad()
                tensors.append((t, t._version))
        kept[(path, index)] = tensors

    handles = [m.register_forward_hook(post) for m in model.modules()]
    torch.manual_seed(1234)
    try:
        out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    loss = loss_fn(out, target)
    loss.backward()
    grads = {key: [t.grad if t._version == v else None for t, v in ts] for key, ts in kept.items()}
    norms = {
        names[m]: {n: float(p.grad.double().norm()) for n, p in m.named_parameters(recurse=False)
                   if p.grad is not None}
        for m in model.modules()
    }  # fmt: skip
    return grads, norms, loss.detach()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradient_stats_equal_autograd(case: Any, mode: str) -> None:
    grads, norms, _ = _independent(case, mode)
    model, args, kwargs = case.build()
    getattr(model, mode)()
    loss_fn, target = _loss(case)
    torch.manual_seed(1234)
    t = inspector.trace(model, *args, loss_fn=loss_fn, target=target, backward=True, **kwargs)
    assert t.error is None
    compared = 0
    for call in t.calls:
        if call.path == "loss_fn" or call.grad is None or call.key not in grads:
            continue
        mine = [
            s for info, s in zip(tensors_in(call.outputs), call.grad.outputs, strict=False)
            if info.requires_grad and info.dtype.startswith(("float", "bfloat"))
        ]  # fmt: skip
        for theirs, stats in zip(grads[call.key], mine, strict=False):
            if theirs is None or stats is None:
                continue
            g = theirs.double()
            assert _close(stats.mean, float(g.mean())), call.name
            assert _close(stats.max, float(g.max())) and _close(stats.min, float(g.min()))
            if g.numel() > 1:
                assert _close(stats.std, float(g.std()), rel=1e-4), call.name
            compared += 1
        for name, grad_norm, _ in call.grad.params:
            assert _close(grad_norm, norms[call.path][name]), (call.name, name)
    if case.name not in ("complex_fft", "identity_head", "teacher_student"):
        assert compared > 0


def test_in_place_relu_gives_the_gradients_of_the_out_of_place_model() -> None:
    torch.manual_seed(0)
    inplace = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip
    plain = copy.deepcopy(inplace)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    a = inspector.trace(inplace, x, loss_fn=nn.CrossEntropyLoss(), target=y, backward=True)
    b = inspector.trace(plain, x, loss_fn=nn.CrossEntropyLoss(), target=y, backward=True)
    assert a.error is None and b.error is None
    for ca, cb in zip(a.calls, b.calls, strict=True):
        assert ca.grad is not None and cb.grad is not None, ca.name
        assert ca.grad.output is not None and cb.grad.output is not None
        assert _close(ca.grad.output.std, cb.grad.output.std), ca.name
        assert [p[0] for p in ca.grad.params] == [p[0] for p in cb.grad.params]
        assert [p[1] for p in ca.grad.params] == pytest.approx([p[1] for p in cb.grad.params])
    bn = a.find("1")  # its output is overwritten in place by the ReLU after it
    relu = a.find("2")
    # the batch-norm output gets the gradient the ReLU let through: zero where it cut
    assert bn.grad.output.zero_fraction > 0.3 > relu.grad.output.zero_fraction  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["batchnorm_dropout_train", "cnn_cross_entropy", "tiny_gpt"])
def test_outputs_gradients_and_rng_identical_with_and_without(name: str) -> None:
    case = ZOO[name]
    loss_fn, target = _loss(case)

    model, args, kwargs = case.build()
    torch.manual_seed(7)
    plain_loss = loss_fn(model(*args, **kwargs), target)
    plain_loss.backward()
    plain_rng = torch.random.get_rng_state()
    plain_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    model, args, kwargs = case.build()
    training = model.training
    torch.manual_seed(7)
    t = inspector.trace(model, *args, loss_fn=loss_fn, target=target, backward=True, **kwargs)
    assert torch.equal(t.loss, plain_loss.detach()) or torch.equal(t.loss, plain_loss)
    assert torch.equal(torch.random.get_rng_state(), plain_rng)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(plain_grads) > 0
    assert all(torch.equal(a, b) for a, b in zip(grads, plain_grads, strict=True))
    assert model.training == training  # modes restored


def _hook_count(model: nn.Module, output: Any) -> int:
    count = sum(len(p._backward_hooks or {}) for p in model.parameters())
    count += sum(len(t._backward_hooks or {}) for t in _tensors(output))
    return count


def test_no_hook_left_after_backward_and_a_later_backward_is_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(3, 4)
    t = inspector.trace(model, x, loss_fn=lambda o, _: o.sum(), backward=True)
    assert _hook_count(model, t.output) == 0
    seen = [c.grad for c in t.calls]
    model.zero_grad()
    model(x).sum().backward()  # the user's own next step: no inspector code runs
    assert [c.grad for c in t.calls] == seen


def test_backward_without_a_scalar_is_a_clear_error_and_leaves_nothing() -> None:
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    with pytest.raises(ValueError, match="give loss_fn and target"):
        inspector.trace(model, torch.randn(2, 4), backward=True)
    assert not model.training and _hook_count(model, None) == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="does not require grad"), torch.no_grad():
        inspector.trace(model, torch.randn(2, 4), loss_fn=lambda o, _: o.sum(), backward=True)


def test_model_output_that_is_a_scalar_needs_no_loss() -> None:
    case = ZOO["returns_loss"]
    model, args, kwargs = case.build()
    t = inspector.trace(model, *args, backward=True, **kwargs)
    assert t.error is None
    assert any(c.grad is not None and c.grad.params for c in t.calls)


def test_a_fault_in_a_gradient_hook_disables_it_with_one_warning(monkeypatch) -> None:
    import inspector.engine.capture.gradients as gradients

    def broken(_: torch.Tensor) -> None:
        raise RuntimeError("stats exploded")

    case = ZOO["mlp"]
    model, args, _ = case.build()
    torch.manual_seed(1)
    plain = model(*args).square().mean()
    plain.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    monkeypatch.setattr(gradients, "compute_stats", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(1)
        t = inspector.trace(model, *args, loss_fn=square_loss, backward=True)
    mine = [w for w in caught if issubclass(w.category, inspector.InspectorWarning)]
    assert len(mine) == 1 and "stats exploded" in str(mine[0].message)
    assert t.error is None
    assert all(torch.equal(p.grad, e) for p, e in zip(model.parameters(), expected, strict=True))


def test_tied_and_reused_parameters_count_once_per_pass() -> None:
    case = ZOO["tied_embedding"]
    model, args, kwargs = case.build()
    t = inspector.trace(model, *args, loss_fn=square_loss, backward=True, **kwargs)
    model.zero_grad()
    square_loss(model(*args, **kwargs)).backward()
    for call in t.calls:
        if call.grad is None or call.path == "loss_fn":
            continue
        module = model.get_submodule(call.path)
        for name, grad_norm, size in call.grad.params:
            p = getattr(module, name)
            assert _close(grad_norm, float(p.grad.double().norm()))
            assert _close(size, float(p.detach().double().norm()))


def test_gradients_survive_json() -> None:
    case = ZOO["resnet_blocks"]
    model, args, kwargs = case.build()
    t = inspector.trace(model, *args, loss_fn=square_loss, backward=True, **kwargs)
    back = inspector.Trace.from_json(t.to_json())
    assert back.calls == t.calls
    assert any(c.grad is not None for c in back.calls)


class SavedThenChanged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.fc(x))
        y.add_(1)  # sigmoid's backward needs its output: changed in place
        return y


def test_a_failing_backward_is_explained_as_such() -> None:
    from inspector.engine.control.debugger import Debugger, Finished

    model = SavedThenChanged()
    t = inspector.trace(model, torch.randn(2, 4), loss_fn=lambda o, _: o.sum(), backward=True)
    assert isinstance(t.error, RuntimeError) and t.output is not None
    d = t.diagnosis
    assert d is not None and d.code == "backward-failed" and d.module == "act"
    assert d.summary.startswith("the backward pass failed: one of the variables needed")
    assert "out of place" in d.fixes[0] and "Sigmoid" in d.fixes[0]
    assert _hook_count(model, t.output) == 0
    debugger = Debugger(model, torch.randn(2, 4), loss_fn=lambda o, _: o.sum(), backward=True,
                        stop_at_start=False)  # fmt: skip
    event = debugger.start()
    while not isinstance(event, Finished):
        event = debugger.cont()
    assert event.trace.diagnosis is not None
    assert event.trace.diagnosis.code == "backward-failed"
