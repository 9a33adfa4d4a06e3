"""trace() on every zoo model: the record matches independent hooks, and nothing changes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine import TensorInfo, tensors_in
from tests.helpers import global_hook_count as _global_hook_count
from tests.helpers import hook_count as _hook_count
from tests.models import ZOO, Case, _tensors

CASES = list(ZOO.values())


def _independent_record(model: nn.Module, args: tuple, kwargs: dict) -> list[tuple[str, list]]:
    """(path, output tensors cloned) for each call, seen by plain hooks written here."""
    names = {m: p for p, m in model.named_modules()}
    order: list[list[Any]] = []
    stack: list[int] = []
    handles = []

    def pre(module: nn.Module, a: tuple, kw: dict) -> None:
        stack.append(len(order))
        order.append([names[module], None])

    def post(module: nn.Module, a: tuple, kw: dict, out: Any) -> None:
        order[stack.pop()][1] = [t.detach().clone() for t in _tensors(out)]

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return [(p, outs) for p, outs in order]


def _same(a: Any, b: Any) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return type(a) is type(b) and len(ta) == len(tb) and all(map(torch.equal, ta, tb))


def _traced_and_expected(case: Case) -> tuple[inspector.Trace, list[tuple[str, list]]]:
    """The trace of a fresh build, and what plain hooks saw on another fresh build."""
    model, args, kwargs = case.build()
    torch.manual_seed(7)
    expected = _independent_record(model, args, kwargs)
    model, args, kwargs = case.build()
    torch.manual_seed(7)
    return inspector.trace(model, *args, **kwargs), expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shapes_match_independent_hooks(case: Case) -> None:
    t, expected = _traced_and_expected(case)
    assert t.error is None
    assert [c.path for c in t.calls] == [p for p, _ in expected]
    for call, (_, outs) in zip(t.calls, expected, strict=True):
        recorded = list(tensors_in(call.outputs))
        assert len(recorded) == len(outs), call.path
        for info, tensor in zip(recorded, outs, strict=True):
            if tensor.is_nested:
                continue
            assert info.shape == tuple(tensor.shape), call.path
            assert info.dtype == str(tensor.dtype).removeprefix("torch.")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_stats_equal_torch(case: Case) -> None:
    t, expected = _traced_and_expected(case)
    checked = 0
    for call, (_, outs) in zip(t.calls, expected, strict=True):
        for info, tensor in zip(tensors_in(call.outputs), outs, strict=True):
            if tensor.numel() == 0:
                assert info.stats is None
                checked += 1
            if not _comparable(info, tensor):
                continue
            x = tensor.double()
            s = info.stats
            assert s is not None
            assert s.numel == x.numel()
            assert s.min == pytest.approx(float(x.min()), rel=1e-5, abs=1e-6), call.path
            assert s.max == pytest.approx(float(x.max()), rel=1e-5, abs=1e-6), call.path
            assert s.mean == pytest.approx(float(x.mean()), rel=1e-5, abs=1e-6), call.path
            if x.numel() > 1:
                assert s.std == pytest.approx(float(x.std()), rel=1e-5, abs=1e-6), call.path
            zeros = float((x == 0).sum()) / x.numel()
            assert s.zero_fraction == pytest.approx(zeros), call.path
            assert sum(s.histogram) == s.sampled > 0
            checked += 1
    assert checked > 0


def _comparable(info: TensorInfo, tensor: torch.Tensor) -> bool:
    return (
        not tensor.is_nested
        and not tensor.is_complex()
        and tensor.numel() > 0
        and tensor.layout == torch.strided
        and bool(tensor.isfinite().all())
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_output_and_rng_unchanged(case: Case) -> None:
    model, args, kwargs = case.build()
    torch.manual_seed(11)
    plain = model(*args, **kwargs)
    plain_rng = torch.random.get_rng_state()

    model, args, kwargs = case.build()
    mode = model.training
    torch.manual_seed(11)
    t = inspector.trace(model, *args, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), plain_rng)
    assert _same(t.output, plain)
    assert model.training == mode
    assert _hook_count(model) == 0
    assert _global_hook_count() == 0


def test_train_mode_output_identical_with_dropout() -> None:
    case = ZOO["batchnorm_dropout_train"]
    model, args, _ = case.build()
    assert model.training
    torch.manual_seed(3)
    plain = model(*args)
    model, args, _ = case.build()
    torch.manual_seed(3)
    traced = inspector.trace(model, *args).output
    assert torch.equal(plain, traced)
    assert model.training


@pytest.mark.parametrize("case", [c for c in CASES if c.loss_fn is not None], ids=lambda c: c.name)
def test_loss_module_recorded_as_loss_fn(case: Case) -> None:
    assert case.loss_fn is not None and case.target is not None
    model, args, kwargs = case.build()
    t = inspector.trace(model, *args, loss_fn=case.loss_fn(), target=case.target(), **kwargs)
    assert t.error is None
    loss_call = t.find("loss_fn")
    assert loss_call.parent is None and loss_call.status == "ok"
    expected = case.loss_fn()(t.output, case.target())
    assert torch.equal(t.loss, expected)
    assert math.isfinite(float(t.loss))
