"""What a call record says of its module: parameter counts (tied weights counted once, lazy
ones left out until they have a shape), paths, and the facts kept across calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.capture.naming import ModuleFacts, ModuleNames, ParamCounter


def _by_sets(module: nn.Module) -> tuple[int, bool]:
    """The count the way that always holds: a set of Parameters per subtree."""
    counter = ParamCounter()
    counter._add_up = lambda root: False  # type: ignore[method-assign]
    return counter.count(module)


def _tied() -> nn.Module:
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    return nn.Sequential(a, nn.ReLU(), b)


def _shared() -> nn.Module:
    block = nn.Linear(4, 4)
    return nn.Sequential(block, nn.Sequential(block, nn.Linear(4, 2)))


def _lazy() -> nn.Module:
    return nn.Sequential(nn.LazyLinear(4), nn.Sequential(nn.Linear(4, 4), nn.Tanh()))


@pytest.mark.parametrize("build", [_tied, _shared, _lazy, lambda: nn.TransformerEncoderLayer(8, 2)])
def test_every_module_counts_as_the_set_of_its_parameters(build: Callable[[], nn.Module]) -> None:
    model = build()
    counter = ParamCounter()
    for module in model.modules():
        assert counter.count(module) == _by_sets(module), type(module).__name__


def test_tied_weights_count_once_in_the_record() -> None:
    model = _tied()
    calls = inspector.trace(model, torch.randn(2, 3), stats=False).calls
    assert calls[0].params == 3 * 3 + 3 + 3  # one weight, two biases


def test_a_lazy_module_is_counted_once_it_has_run() -> None:
    model = _lazy()
    first = inspector.trace(model, torch.randn(2, 5), stats=False)
    assert first.error is None
    assert first.calls[0].params == 5 * 4 + 4 + 4 * 4 + 4


def test_facts_are_one_lookup_and_follow_a_replaced_module() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    names = ModuleNames()
    names.add_root(model, "net")
    facts = ModuleFacts(names)
    facts.learn(list(model.modules()))
    ref, line, params, type_name, path, unit = facts.known[id(model[0])]
    assert line.startswith("Linear(in_features=2")
    assert (ref() is model[0], params, type_name, path, unit) == (True, 6, "Linear", "net.0", False)
    assert facts.known[id(model[1])][4:] == ("net.1", True)  # an activation: units looked at
    model[0] = nn.Linear(2, 2, bias=False)  # a new module, a new entry when it is first seen
    assert id(model[0]) not in facts.known or facts.known[id(model[0])][0]() is not model[0]
    entry, final = facts.entry(model[0], "net")
    assert final and entry[2] == 4 and entry[4] == "net.<Linear>"
