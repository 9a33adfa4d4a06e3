"""trace(): failures, interrupts, faults inside the recorder, odd tensors, global naming."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

import inspector
from inspector.engine import InspectorWarning, Recorder, Struct, TensorInfo
from tests.helpers import global_hook_count as _global_hook_count
from tests.helpers import hook_count as _hook_count


class TwoStage(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, width), nn.ReLU())
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def test_failure_is_recorded_not_raised() -> None:
    model = TwoStage()
    model.train()
    t = inspector.trace(model, torch.randn(3, 4))
    assert isinstance(t.error, RuntimeError)
    assert "cannot be multiplied" in str(t.error)
    assert t.output is None
    statuses = {c.path: c.status for c in t.calls}
    assert statuses == {
        "": "error",
        "encoder": "ok",
        "encoder.0": "ok",
        "encoder.1": "ok",
        "head": "error",
    }
    head = t.find("head")
    assert head.inputs[0].shape == (3, 8)
    assert head.error is not None and head.error.startswith("RuntimeError")
    assert model.training
    assert _hook_count(model) == 0 and _global_hook_count() == 0


def test_original_exception_object_kept() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("custom failure")

    t = inspector.trace(nn.Sequential(nn.Identity(), Boom()), torch.ones(1))
    assert type(t.error) is ValueError
    assert t.error.args == ("custom failure",)
    assert t.error.__traceback__ is not None
    assert [c.status for c in t.calls] == ["error", "ok", "error"]


def test_keyboard_interrupt_propagates_with_hooks_removed() -> None:
    class Interrupted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.fc(x)
            raise KeyboardInterrupt

    model = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        inspector.trace(model, torch.ones(1, 2))
    assert _hook_count(model) == 0 and _global_hook_count() == 0
    # the model still runs normally (no stale state left in the model)
    with pytest.raises(KeyboardInterrupt):
        model(torch.ones(1, 2))


def test_exception_caught_inside_forward_is_not_a_failure() -> None:
    class Careful(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bad = nn.Linear(3, 2)
            self.good = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            try:
                return self.bad(x)
            except RuntimeError:
                return self.good(x)

    t = inspector.trace(Careful(), torch.ones(2, 4))
    assert t.error is None
    assert t.find("bad").status == "error"
    assert t.find("good").status == "ok"
    assert t.find("").status == "ok"
    assert t.findings == []


def test_fault_in_recorder_disables_it_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.engine.capture.describe import Describer

    def failing(self: Describer, t: torch.Tensor, producer: int | None) -> None:
        raise RuntimeError("statistics are not supported on this tensor")

    monkeypatch.setattr(Describer, "tensor", failing)
    model = nn.Sequential(nn.Identity(), nn.Identity())
    x = torch.randn(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = inspector.trace(model, x)
    ours = [w for w in caught if issubclass(w.category, InspectorWarning)]
    assert len(ours) == 1
    assert "statistics are not supported" in str(ours[0].message)
    assert t.error is None
    assert t.output is x
    assert _hook_count(model) == 0


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda: torch.arange(6).reshape(2, 3), "int64"),
        (lambda: torch.tensor([[True, False]]), "bool"),
        (lambda: torch.randn(2, 3, dtype=torch.complex64), "complex64"),
        (lambda: torch.empty(0, 3), "float32"),
        (lambda: torch.empty(2, 3, device="meta"), "float32"),
        (lambda: torch.eye(3).to_sparse(), "float32"),
        (lambda: torch.randn(4).half(), "float16"),
        (lambda: torch.randn(4).bfloat16(), "bfloat16"),
        (lambda: torch.tensor(3.5), "float32"),
    ],
)
def test_any_tensor_is_described(make, dtype: str) -> None:  # type: ignore[no-untyped-def]
    x = make()
    t = inspector.trace(nn.Identity(), x)
    assert t.error is None
    info = t.calls[0].inputs[0]
    assert isinstance(info, TensorInfo)
    assert info.shape == tuple(x.shape)
    assert info.dtype == dtype
    if x.is_complex() or x.is_meta or x.layout != torch.strided or x.numel() == 0:
        assert info.stats is None
    else:
        assert info.stats is not None
        assert info.stats.min == pytest.approx(float(x.double().min()))
        assert info.stats.max == pytest.approx(float(x.double().max()))


def test_nan_and_inf_counted_and_excluded_from_mean() -> None:
    x = torch.tensor([1.0, float("nan"), 3.0, float("inf"), float("-inf"), 0.0])
    stats = inspector.trace(nn.Identity(), x).calls[0].inputs[0].stats
    assert stats is not None
    assert (stats.nan, stats.inf) == (1, 2)
    assert stats.mean == pytest.approx(4.0 / 3.0)
    assert (stats.min, stats.max) == (0.0, 3.0)
    assert stats.zero_fraction == pytest.approx(1 / 6)


def test_stats_precise_when_mean_dwarfs_std() -> None:
    x = 1000.0 + 1e-3 * torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    stats = inspector.trace(nn.Identity(), x).calls[0].inputs[0].stats
    assert stats is not None
    assert stats.std == pytest.approx(float(x.double().std()), rel=1e-4)


def test_shapes_only_mode_has_no_stats() -> None:
    t = inspector.trace(TwoStage(16), torch.randn(3, 4), stats=False)
    assert all(
        info.stats is None for c in t.calls for info in inspector.engine.tensors_in(c.outputs)
    )
    assert t.find("head").outputs.shape == (3, 2)


def test_reuse_keys_and_parents() -> None:
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(4, 4), nn.Tanh())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(self.block(x))

    t = inspector.trace(Reuse(), torch.randn(2, 4))
    keys = [c.key for c in t.calls]
    assert keys == [
        ("", 0),
        ("block", 0),
        ("block.0", 0),
        ("block.1", 0),
        ("block", 1),
        ("block.0", 1),
        ("block.1", 1),
    ]
    assert [c.parent for c in t.calls] == [None, 0, 1, 1, 0, 4, 4]
    assert [c.depth for c in t.calls] == [0, 1, 2, 2, 1, 2, 2]
    assert t.find("block.0", 1).name == "block.0 (call 2)"
    # the second call's input is the first call's output: same record, producer known
    assert t.find("block", 1).inputs[0] is t.find("block", 0).outputs
    assert t.find("block", 1).inputs[0].producer == t.find("block.1").seq


def test_tied_weights_counted_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.out(self.embed(ids))

    t = inspector.trace(Tied(), torch.tensor([[1, 2]]))
    assert t.find("").params == 40
    assert t.find("out").params == 40


def test_a_lazy_module_is_described_as_it_runs() -> None:
    # Before its first call a LazyLinear has no weight to count and reads in_features=0.
    model = nn.Sequential(nn.LazyLinear(3), nn.ReLU())
    t = inspector.trace(model, torch.randn(2, 5))
    assert t.find("0").module_repr == "Linear(in_features=5, out_features=3, bias=True)"
    assert t.find("0").params == 5 * 3 + 3
    assert t.find("").params == 18


def test_view_of_records_where_a_reshaped_tensor_came_from() -> None:
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(32, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).view(-1, 32))

    t = inspector.trace(Flat(), torch.randn(3, 1, 4, 4))
    fc_in = t.find("fc").inputs[0]
    assert fc_in.shape == (3, 32)
    assert fc_in.producer is None
    assert fc_in.view_of == t.find("conv").seq


def test_kwargs_and_structured_outputs() -> None:
    class KW(nn.Module):
        def forward(self, x: torch.Tensor, *, scale: float, mask: torch.Tensor) -> dict:
            return {"y": x * scale, "n": int(mask.sum()), "none": None}

    t = inspector.trace(KW(), torch.ones(2), scale=2.0, mask=torch.tensor([True, False]))
    root = t.calls[0]
    assert root.kwargs is not None and root.kwargs["scale"] == 2.0
    assert root.kwargs["mask"].dtype == "bool"
    assert isinstance(root.outputs, Struct)
    assert root.outputs["y"].shape == (2,)
    assert root.outputs["n"] == 1 and root.outputs["none"] is None


def test_plain_function_loss_recorded() -> None:
    model = nn.Linear(3, 1)
    t = inspector.trace(
        model, torch.randn(4, 3), loss_fn=torch.nn.functional.mse_loss, target=torch.zeros(4, 1)
    )
    loss = t.find("loss_fn")
    assert loss.type == "mse_loss" and loss.status == "ok"
    assert [i.shape for i in loss.inputs] == [(4, 1), (4, 1)]


def test_not_a_module_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"expects an nn\.Module"):
        inspector.trace(lambda x: x, torch.ones(1))  # type: ignore[arg-type]


def test_global_mode_names_roots_after_the_callers_variables() -> None:
    model = TwoStage(16)
    criterion = nn.MSELoss()
    recorder = Recorder(stats=False)
    recorder.attach_global()
    try:
        out = model(torch.randn(3, 4))
        criterion(out, torch.zeros(3, 2))
    finally:
        recorder.detach()
    assert [c.path for c in recorder.calls] == [
        "model",
        "model.encoder",
        "model.encoder.0",
        "model.encoder.1",
        "model.head",
        "criterion",
    ]
    assert [c.parent for c in recorder.calls] == [None, 0, 1, 1, 0, None]
    assert len(torch_module._global_forward_hooks) == 0
    assert len(torch_module._global_forward_pre_hooks) == 0


def test_global_mode_marks_the_failing_call() -> None:
    model = TwoStage()
    recorder = Recorder(stats=False)
    recorder.attach_global()
    try:
        with pytest.raises(RuntimeError):
            model(torch.randn(3, 4))
    finally:
        recorder.detach()
    assert [c.status for c in recorder.calls] == ["error", "ok", "ok", "ok", "error"]
    failure = recorder.failure_for(recorder.failures[0].exception)
    assert failure is not None and recorder.calls[failure.seq].path == "model.head"


def test_the_garbage_collector_is_left_as_it_was() -> None:
    import gc

    model = nn.Sequential(nn.Linear(3, 2))
    assert gc.isenabled()
    inspector.trace(model, torch.randn(2, 3))
    assert gc.isenabled()
    gc.disable()
    try:
        inspector.trace(model, torch.randn(2, 5))  # fails inside: the error is recorded
        assert not gc.isenabled()
    finally:
        gc.enable()

    class Interrupts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        inspector.trace(Interrupts(), torch.randn(2))
    assert gc.isenabled()


def test_a_numeric_warning_is_a_finding_never_the_diagnosis() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every unit of the ReLU is dead
    t = inspector.trace(model, torch.randn(16, 8))
    assert t.error is None
    assert any(f.kind == "warning" for f in t.findings), t.findings
    assert t.diagnosis is None
    assert inspector.diagnose(model, torch.randn(16, 8)) is None


def test_a_silent_shape_bug_is_the_diagnosis_of_a_pass_that_ran() -> None:
    class Folds(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.view(-1, 4))  # (8, 2, 4) -> (16, 4): the batch is now 16

    t = inspector.trace(Folds(), torch.randn(8, 2, 4))
    assert t.error is None
    assert t.diagnosis is not None and t.diagnosis.kind == "warning"
