"""The layout kept between traces of one model is never stale: after each kind of change to
the model, a trace that may reuse it records what a trace of a never-seen model records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.capture import layout


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16))
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.drop(self.body(x)))


def _record(model: nn.Module) -> list[tuple[Any, ...]]:
    with torch.no_grad():
        t = inspector.trace(model, torch.randn(2, 8), stats=False)
    return [(c.path, c.type, c.module_repr, c.params, str(c.inputs), str(c.outputs))
            for c in t.calls]  # fmt: skip


def _extra_repr_on_instance(m: Net) -> None:
    m.head.extra_repr = lambda: "custom"  # type: ignore[method-assign]


def _class_extra_repr(m: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nn.Dropout, "extra_repr", lambda self: "patched")


CHANGES: dict[str, Callable[..., None]] = {
    "module replaced": lambda m: setattr(m, "head", nn.Linear(16, 6)),
    "child appended": lambda m: m.body.append(nn.Identity()),
    "children renamed": lambda m: (
        m._modules.__setitem__("tail", m._modules.pop("head")),
        setattr(type(m), "forward", _forward_tail),
    ),
    "parameter added": lambda m: m.drop.register_parameter("scale", nn.Parameter(torch.ones(1))),
    "bias set to None": lambda m: setattr(m.head, "bias", None),
    "data resized in place": lambda m: setattr(m.head.weight, "data", torch.randn(6, 16)),
    "eps changed": lambda m: setattr(m.body[2], "eps", 1e-3),
    "p changed": lambda m: setattr(m.drop, "p", 0.5),
    "approximate changed": lambda m: setattr(m.body[1], "approximate", "tanh"),
    "class reassigned": lambda m: setattr(m.body[1], "__class__", nn.ReLU),
    "extra_repr on the instance": _extra_repr_on_instance,
}


def _forward_tail(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.tail(self.drop(self.body(x)))  # type: ignore[operator]


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_a_changed_model_is_recorded_as_a_new_one(change: str) -> None:
    original_forward = Net.forward
    try:
        model = Net()
        _record(model)
        before = _record(model)  # the layout is kept from this trace on
        CHANGES[change](model)
        reused = _record(model)
        layout._LAYOUTS.clear()
        fresh = _record(model)
    finally:
        Net.forward = original_forward  # type: ignore[method-assign]
    assert reused == fresh
    assert reused != before  # every change here shows in the record


def test_a_patched_class_extra_repr_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Net()
    _record(model)
    _record(model)
    _class_extra_repr(model, monkeypatch)
    reused = _record(model)
    layout._LAYOUTS.clear()
    assert reused == _record(model)
    assert any(call[2] == "Dropout(patched)" for call in reused)


def test_compiled_in_place_is_recorded_at_its_boundary() -> None:
    model = Net()
    _record(model)
    _record(model)
    model.head.compile()
    reused = _record(model)
    layout._LAYOUTS.clear()
    assert reused == _record(model)


def _session_records(model: nn.Module, passes: int, change: Callable[[Net], None] | None = None
                     ) -> list[list[tuple[Any, ...]]]:  # fmt: skip
    """The record of each pass of a session on `model` (each pass a new record), with
    `change` made to the model before the last pass."""
    from inspector.engine.control.session import Session

    def never(pause: object) -> None:
        raise AssertionError("nothing stops here")

    records = []
    with torch.no_grad(), Session(never, model, stats=False) as session:
        for i in range(passes):
            if change is not None and i == passes - 1:
                change(model)  # type: ignore[arg-type]
            model(torch.randn(2, 8))
            records.append([(c.path, c.type, c.module_repr, c.params, str(c.inputs),
                              str(c.outputs)) for c in session.recorder.calls])  # fmt: skip
    return records


def _resize_head(m: Net) -> None:
    m.head.weight.data = torch.randn(6, 16)
    m.head.bias.data = torch.randn(6)


# The changes a session's hooks follow (the same modules, still running): a module replaced
# or added after attaching is not hooked, so it is not in this list.
SESSION_CHANGES = {
    name: CHANGES[name]
    for name in ("parameter added", "bias set to None", "eps changed", "p changed",
                 "approximate changed", "extra_repr on the instance")
} | {"data resized in place": _resize_head}  # fmt: skip


@pytest.mark.parametrize("change", list(SESSION_CHANGES), ids=list(SESSION_CHANGES))
def test_a_session_describes_a_changed_model_anew(change: str) -> None:
    # A session keeps its modules' facts from one pass to the next when nothing changed;
    # a pass after any change records what a new session records.
    torch.manual_seed(0)
    model = Net()
    records = _session_records(model, 4, SESSION_CHANGES[change])
    torch.manual_seed(0)
    plain = _session_records(Net(), 3)
    fresh = _session_records(model, 1)
    shapes_free = [[row[:4] for row in rows] for rows in records]
    assert shapes_free[1] == shapes_free[2] == [row[:4] for row in plain[0]]
    assert shapes_free[3] == [row[:4] for row in fresh[0]]
    assert shapes_free[3] != shapes_free[2]  # every change here shows in the record
