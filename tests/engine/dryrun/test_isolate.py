"""Snapshot: what a forward writes is put back as the very same objects, interrupt or not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspector.engine.dryrun.isolate import Snapshot, isolated

STORE: dict[str, object] = {}


class Writer(nn.Module):
    """A forward that writes everywhere a forward can."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("avg", torch.zeros(3))
        self.steps = 0
        self.cache: dict[str, torch.Tensor] = {}
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        self.avg = self.avg + 1  # a buffer reassigned
        self.cache["x"] = x
        self.seen.append(1)
        self.table = torch.ones(2)  # a cache attribute made on first use
        self.extra = nn.Linear(3, 3)  # a submodule built on first use
        self.fc.weight = nn.Parameter(torch.zeros(3, 3))  # a parameter replaced
        self.fc.register_forward_hook(lambda *a: None)
        STORE["out"] = x
        return self.fc(x)


def state(model: nn.Module) -> list[tuple[str, list[tuple[str, int]]]]:
    rows = []
    for path, m in model.named_modules():
        tables = {k: v for k, v in vars(m).items() if isinstance(v, dict)}
        rows.append((path, [(k, id(v)) for k, v in vars(m).items()]))
        rows.extend((f"{path}.{k}", [(n, id(v)) for n, v in t.items()]) for k, t in tables.items())
    return rows


def test_restore_puts_back_the_same_objects_and_drops_what_was_added() -> None:
    model = Writer()
    before, weight, avg = state(model), model.fc.weight, model.avg
    with isolated(model):
        model(torch.ones(1, 3))
    assert state(model) == before
    assert model.fc.weight is weight and model.avg is avg
    assert model.steps == 0 and model.cache == {} and model.seen == []
    assert not hasattr(model, "table") and not hasattr(model, "extra")
    assert not model.fc._forward_hooks


def test_input_objects_are_put_back() -> None:
    inputs = {"a": [1, 2], "b": {"k": 1}}
    snapshot = Snapshot((inputs,))
    inputs["a"].append(3)
    inputs["b"]["new"] = 2
    inputs["c"] = 0
    snapshot.restore()
    assert inputs == {"a": [1, 2], "b": {"k": 1}}


def test_state_a_hook_or_forward_reaches_is_put_back_only_where_it_leaked() -> None:
    leak = torch.ones(1)
    stored: dict[str, object] = {}
    counted: list[int] = []
    last = None

    def hook(module: nn.Module, args: object, out: object) -> None:
        nonlocal last
        stored["out"] = leak
        counted.append(1)
        last = leak

    model = Writer()
    model.fc.register_forward_hook(hook)
    STORE.clear()
    with isolated(model, leaked=lambda v: v is leak):
        model(torch.ones(1, 3))
        STORE["out"] = leak  # a global the forward names
    assert stored == {} and last is None and "out" not in STORE
    assert counted == [1]  # the program's own bookkeeping stays as it ran


def test_values_mode_undoes_in_place_updates_of_buffers_and_inputs() -> None:
    model = nn.BatchNorm1d(3).train()
    x = torch.randn(4, 3)
    saved_x, saved_mean = x.clone(), model.running_mean.clone()
    with isolated(model, (x,), values=True):
        model(x)
        x.add_(1)
    assert torch.equal(model.running_mean, saved_mean) and torch.equal(x, saved_x)
    assert int(model.num_batches_tracked) == 0


class _InterruptOnce(list):  # type: ignore[type-arg]
    """A list whose first write back raises KeyboardInterrupt, as a Ctrl-C would."""

    fired = False

    def __setitem__(self, key: object, value: object) -> None:
        if not _InterruptOnce.fired:
            _InterruptOnce.fired = True
            raise KeyboardInterrupt
        super().__setitem__(key, value)  # type: ignore[index]


def test_an_interrupt_during_restore_still_restores_everything_then_reraises() -> None:
    model = Writer()
    model.seen = _InterruptOnce()
    weight = model.fc.weight
    with pytest.raises(KeyboardInterrupt), isolated(model):
        model(torch.ones(1, 3))
    assert _InterruptOnce.fired
    assert model.fc.weight is weight and model.steps == 0 and list(model.seen) == []
    assert not hasattr(model, "extra") and not model.fc._forward_hooks
