"""The tree's subtree ends, kept as calls arrive in chunks, against a brute-force count."""

from __future__ import annotations

import random

import pytest

from inspector.engine.records import Call
from inspector.tui.calltree import CallTree


def _random_calls(rng: random.Random, count: int) -> list[Call]:
    """A pre-order pass: each call's parent is one of the calls still open."""
    calls: list[Call] = []
    open_: list[int] = []
    for seq in range(count):
        while open_ and rng.random() < 0.4:
            open_.pop()
        parent = open_[-1] if open_ else None
        depth = 0 if parent is None else calls[parent].depth + 1
        calls.append(Call(seq=seq, path=f"m{seq}", index=0, type="Linear", depth=depth,
                          parent=parent, inputs=(), status="ok"))  # fmt: skip
        open_.append(seq)
    return calls


def _brute_ends(calls: list[Call]) -> list[int]:
    ends = []
    for call in calls:
        end = call.seq
        for later in calls[call.seq + 1 :]:
            p = later.parent
            while p is not None and p != call.seq:
                p = calls[p].parent
            if p == call.seq:
                end = later.seq
        ends.append(end)
    return ends


@pytest.mark.parametrize("seed", range(20))
def test_ends_grow_right_chunk_by_chunk(seed: int) -> None:
    rng = random.Random(seed)
    calls = _random_calls(rng, rng.randint(1, 120))
    tree = CallTree()
    done = 0
    while done < len(calls):
        upto = min(len(calls), done + rng.randint(1, 30))
        tree.calls = calls[:upto]
        tree._extend_ends(done)
        assert tree._ends == _brute_ends(calls[:upto])
        done = upto
