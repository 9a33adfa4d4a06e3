"""The failing op and its operands, read from the traceback: exact, and nothing of the user's
runs again (no forward, no property, no __torch_function__)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.diagnose.locate import failing_op, module_chain
from inspector.engine.diagnose.operands import UNKNOWN


def _raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("expected a failure")


def test_a_method_call_names_the_method_and_its_operands() -> None:
    x = torch.ones(4, 3, 16, 16)
    exc = _raised(lambda: x.view(-1, 27))
    op = failing_op(exc)
    assert op is not None and op.name == "view"
    assert op.args[0] is x and op.args[1:] == (-1, 27)


def test_the_failing_call_among_several_on_one_line_is_picked_by_its_columns() -> None:
    a, b = torch.ones(2, 3), torch.ones(4, 5)
    exc = _raised(lambda: torch.relu(a) + torch.cat([a, b], dim=0))
    op = failing_op(exc)
    assert op is not None and op.name == "cat"
    assert op.args[0][0] is a and op.args[0][1] is b and op.kwargs == {"dim": 0}


def test_an_operator_and_a_view_inside_the_expression_are_rebuilt_without_copies() -> None:
    q, k = torch.ones(2, 4, 8), torch.ones(2, 5, 6)
    exc = _raised(lambda: q @ k.transpose(1, 2))
    op = failing_op(exc)
    assert op is not None and op.name == "matmul"
    assert op.args[0] is q
    assert tuple(op.args[1].shape) == (2, 6, 5)
    assert op.args[1].data_ptr() == k.data_ptr()  # a view of k, not a copy


def test_a_python_raise_is_no_op() -> None:
    def check(x: torch.Tensor) -> None:
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 channels, got {x.shape[1]}")

    assert failing_op(_raised(lambda: check(torch.ones(1, 4)))) is None


class Sneaky:
    """A user object whose property counts its reads: reading it is running user code."""

    def __init__(self) -> None:
        self.reads = 0
        self.width = 5

    @property
    def size(self) -> int:
        self.reads += 1
        return 7


def test_properties_of_user_objects_are_never_called() -> None:
    cfg = Sneaky()
    x = torch.ones(2, 6)
    exc = _raised(lambda: x.view(cfg.size, cfg.width))
    assert cfg.reads == 1  # the user's own call read it
    op = failing_op(exc)
    assert op is not None and op.name == "view"
    assert op.args[1] is UNKNOWN and op.args[2] == 5
    assert cfg.reads == 1  # the diagnosis did not


class Counting(torch.Tensor):
    seen: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        cls.seen.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_subclass_sees_no_op_of_the_diagnosis() -> None:
    x = torch.ones(2, 6).as_subclass(Counting)
    exc = _raised(lambda: x.view(5, -1))
    Counting.seen.clear()
    op = failing_op(exc)
    assert op is not None and op.name == "view"
    assert Counting.seen == []


class Up(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2)
        self.calls = 0

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.cat(
            [self.up(x), skip],  # the failing op spans two lines
            dim=1,
        )


def test_a_module_called_inside_the_expression_gives_its_recorded_output() -> None:
    model = Up()
    t = inspector.trace(model, torch.ones(1, 4, 5, 5), torch.ones(1, 4, 11, 11))
    assert model.calls == 1  # once: nothing replayed
    d = t.diagnosis
    assert d is not None and d.op is not None and d.op.name == "cat"
    assert d.op.operand_shapes() == [(1, 4, 10, 10), (1, 4, 11, 11)]


def test_the_module_chain_comes_from_torchs_call_frames() -> None:
    inner = nn.Linear(4, 2)
    model = nn.Sequential(nn.Identity(), inner)
    x = torch.ones(3, 5)
    exc = _raised(lambda: model(x))
    chain = module_chain(exc)
    assert [m for m, _, _ in chain] == [model, inner]
    assert chain[-1][1][0] is x


@pytest.mark.parametrize("how", ["trace", "explain"])
def test_diagnosis_runs_the_failing_forward_once(how: str) -> None:
    model = Up()
    args = (torch.ones(1, 4, 5, 5), torch.ones(1, 4, 11, 11))
    if how == "trace":
        inspector.trace(model, *args)
    else:
        with pytest.raises(RuntimeError) as caught, inspector.explain():
            model(*args)
        assert "torch-inspector" in "\n".join(caught.value.__notes__)
    assert model.calls == 1
