"""check(): a dry run on fake tensors that goes on past each mismatch."""

from __future__ import annotations

import resource

import pytest
import torch
from torch import nn

import inspector
from inspector.engine import first_tensor
from tests.helpers import load_example
from tests.models import ZOO, Case

CASES = list(ZOO.values())


def test_seed_cnn_lists_every_mismatch_in_one_run() -> None:
    model, args = load_example("seed_cnn").build()
    result = inspector.check(model, *args)
    assert [(f.module, f.op.name if f.op else None) for f in result] == [
        ("", "view"),
        ("", "view"),
        ("fc1", "linear"),
    ]
    assert "768" in result[0].fixes[0] and "96" in result[1].fixes[0]
    assert "nn.Linear(96, 256)" in result[2].fixes[0]
    assert [f.line.lineno for f in result if f.line] == [21, 23, 24]
    assert result.stopped is None
    assert [c.path for c in result.calls] == ["", "conv1", "pool", "conv2", "pool", "fc1", "fc2"]
    assert result.calls[-1].outputs.shape == (4, 10)  # went on with fc1's declared output


def test_shapes_given_as_tuples_and_no_real_memory() -> None:
    class Big(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            with torch.device("meta"):
                self.fc1 = nn.Linear(4096, 4096)
                self.fc2 = nn.Linear(2048, 10)  # planted: fc1 gives 4096

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.fc1(x).relu())

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = inspector.check(Big(), (1024, 4096))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [f.module for f in result.errors] == ["fc2"]
    assert "nn.Linear(4096, 10)" in result[0].fixes[0]
    assert grown_mb < 64  # a real activation alone would take 16 MB, weights 64 MB


def test_planted_mismatches_in_a_deep_stack_all_found() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(16),  # planted 1
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Conv2d(4, 8, 3, padding=1),  # planted 2
        nn.Flatten(),
        nn.Linear(100, 10),  # planted 3: 8*8*8 = 512
    )
    result = inspector.check(model, (2, 3, 8, 8))
    assert [f.module for f in result] == ["1", "3", "5"]
    assert "num_features=16" in result[0].summary
    assert "nn.BatchNorm2d(8)" in result[0].fixes[0]
    assert "nn.Conv2d(8, 8" in result[1].fixes[0]
    assert "nn.Linear(512, 10)" in result[2].fixes[0]


def test_data_dependent_op_stops_with_a_note() -> None:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            if h.sum() > 0:  # value-dependent control flow
                h = h * 2
            return self.out(h)

    result = inspector.check(Masked(), (3, 4))
    assert result.stopped is not None and result.stopped.startswith("could not verify past (root)")
    assert [f.code for f in result] == ["not-verified"] and not result.errors
    assert "1 modules never reached (out)" in result[0].details[1]


def test_lazy_modules_are_refused_politely() -> None:
    model = nn.Sequential(nn.LazyLinear(4))
    result = inspector.check(model, (2, 3))
    assert result.stopped is not None and "lazy" in result.stopped
    assert isinstance(model[0], nn.LazyLinear)  # untouched


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_healthy_zoo_has_no_error_and_the_real_shapes(case: Case) -> None:
    model, args, kwargs = case.build()
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}
    state = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if not isinstance(v, nn.parameter.UninitializedParameter)
    }
    result = inspector.check(model, *args, **extra, **kwargs)
    assert not result.errors, "\n".join(str(f) for f in result)
    assert all(f.code == "not-verified" for f in result)
    for k, v in model.state_dict().items():  # the dry run left the real model alone
        assert k not in state or torch.equal(v, state[k]), k
    if result.stopped is None:
        real = inspector.trace(model, *args, **extra, **kwargs)
        shapes = [_shape(c) for c in result.calls]
        assert shapes == [_shape(c) for c in real.calls]


def _shape(call: inspector.Call) -> tuple[str, tuple[int, ...] | None]:
    out = first_tensor(call.outputs)
    return call.path, out.shape if out is not None and -1 not in out.shape else None


def test_a_model_checked_again_is_walked_once_and_recorded_the_same() -> None:
    """The hooks go on before the stand-ins: the second check of a model finds the walks of
    the first kept (they are checked against its real parameters, which the stand-ins are
    not), and records the same calls; a changed model is walked anew."""
    from inspector.engine.capture import layout

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    first = inspector.check(model, torch.randn(2, 4))
    second = inspector.check(model, torch.randn(2, 4))
    kept = layout.cached(model, "")
    assert kept is not None and kept.modules() == list(model.modules())

    def rows(result: inspector.CheckResult) -> list[tuple[object, ...]]:
        return [(c.path, c.module_repr, c.params, c.type) for c in result.calls]

    assert rows(first) == rows(second) and rows(second)[1][1].startswith("Linear(in_features=4")
    model[2] = nn.Linear(8, 5)
    changed = inspector.check(model, torch.randn(2, 4))
    assert rows(changed)[3][1].startswith("Linear(in_features=8, out_features=5")
