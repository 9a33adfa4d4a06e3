"""What the isolation snapshot walks and what it leaves alone, and that a set is put back."""

from __future__ import annotations

import gc
import logging

import torch
from torch import nn

import inspector
from inspector.engine.dryrun.isolate import Snapshot

LOG = logging.getLogger("tests.isolate_walk")
SEEN: dict[str, object] = {}


class Logs(nn.Module):
    """A forward that names a module-level logger and a module-level dict."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.names: set[str] = {"a"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        LOG.debug("shape %s", tuple(x.shape))
        self.names.add("b")
        SEEN["x"] = x
        return self.fc(x)


def test_the_logging_tree_is_not_walked_but_a_global_dict_still_is() -> None:
    model = Logs()
    snapshot = Snapshot((model,), leaked=lambda v: False)
    kept = snapshot._keep
    assert not any(isinstance(o, (logging.Logger, logging.Manager)) for o in kept)
    assert any(o is SEEN for o in kept)


def test_check_leaves_the_sets_and_globals_a_forward_writes_as_they_were() -> None:
    model = Logs()
    names = model.names
    SEEN.clear()
    result = inspector.check(model, (4, 3))
    assert result.ok
    assert model.names is names and names == {"a"}
    assert SEEN == {}


def test_a_set_left_unchanged_is_not_rebuilt() -> None:
    members = {"a", "b"}
    snapshot = Snapshot(({"s": members},))
    saved = set(members)
    snapshot.restore()
    assert members == saved
    members.add("c")
    snapshot.restore()
    assert members == saved


COLLECTING: list[bool] = []


class Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        COLLECTING.append(gc.isenabled())  # outside the model: stays as the run left it
        raise ValueError("boom")


def test_check_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    assert inspector.check(Logs(), (4, 3)).ok
    assert gc.isenabled()
    COLLECTING.clear()
    assert not inspector.check(Fails(), (4, 3)).ok
    assert gc.isenabled()
    assert COLLECTING == [True]  # the forward runs with it on
    gc.disable()
    try:
        COLLECTING.clear()
        inspector.check(Fails(), (4, 3))
        assert not gc.isenabled() and COLLECTING == [False]
    finally:
        gc.enable()


def test_a_set_holding_an_equal_but_other_member_is_put_back() -> None:
    first, other = tuple([1]), tuple([1])
    assert first is not other
    members = {first}
    snapshot = Snapshot(({"s": members},))
    members.clear()
    members.add(other)  # equal, not the same
    snapshot.restore()
    assert next(iter(members)) is first
