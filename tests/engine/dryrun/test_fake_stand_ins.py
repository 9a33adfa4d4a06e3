"""The stand-ins a dry run makes without the fake mode's dispatch are the mode's own kind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.dryrun.fake import FakeRun, is_fake


def test_a_stand_in_is_what_empty_strided_makes_in_the_mode() -> None:
    real = torch.randn(6, 4).t()  # strides (1, 4)
    with FakeRun() as fake:
        made = fake.empty_strided(tuple(real.shape), real.stride(), real.dtype, "cpu")
        mode_made = torch.empty_strided(real.shape, real.stride(), dtype=real.dtype, device="cpu")
        assert fake._direct
        assert type(made) is type(mode_made) and is_fake(made)
        assert vars(made).keys() == vars(mode_made).keys()
        assert made.fake_mode is mode_made.fake_mode is fake.mode
        for a in ("shape", "dtype", "device", "requires_grad", "layout"):
            assert getattr(made, a) == getattr(mode_made, a), a
        assert made.stride() == mode_made.stride() == (1, 4)
        assert (made @ made.t()).shape == (4, 4)


def test_parameters_stay_parameters_with_their_grad_flags() -> None:
    real = nn.Parameter(torch.ones(3, 2), requires_grad=False)
    with FakeRun() as fake:
        made = fake.parameter(real, "cpu")
        assert isinstance(made, nn.Parameter) and is_fake(made)
        assert not made.requires_grad
        assert fake.parameter(nn.Parameter(torch.ones(2)), "cpu").requires_grad


def test_without_the_direct_way_stand_ins_come_from_the_mode() -> None:
    with FakeRun() as fake:
        fake._direct = False
        made = fake.empty_strided((2, 3), (3, 1), torch.float16, "cpu")
        assert is_fake(made) and made.dtype == torch.float16 and made.shape == (2, 3)


def test_check_finds_the_same_mismatch_with_direct_stand_ins() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(12, 4))
    weight = model[0].weight
    result = inspector.check(model, (2, 8))
    assert [f.module for f in result.errors] == ["2"]
    assert model[0].weight is weight and not is_fake(weight)


def test_ops_on_owned_integer_tensors_run_for_real_after_a_rehearsal_on_fakes() -> None:
    ids, pair = torch.tensor([[1, 2, 3]]), torch.ones(2, 2, dtype=torch.long)
    with FakeRun() as fake:
        owned = fake.tensor(ids, "cpu")
        assert fake.owns(owned)
        doubled = fake.run_real(torch.add, (owned, owned), {})
        assert fake.owns(doubled) and doubled.tolist() == [[2, 4, 6]]
        joined = fake.run_real(torch.cat, ([owned, doubled],), {"dim": 1})
        assert fake.owns(joined) and joined.tolist() == [[1, 2, 3, 2, 4, 6]]
        # a result past the limit of real values stays fake, as the rehearsal made it
        big = fake.run_real(torch.Tensor.expand, (owned, 1 << 21, 3), {})
        assert is_fake(big) and big.shape == (1 << 21, 3) and big.dtype == torch.int64
        # the op's own error comes from the real op
        other = fake.tensor(pair, "cpu")
        assert fake.owns(other)
        with pytest.raises(RuntimeError, match="must match the size"):
            fake.run_real(torch.add, (owned, other), {})
    assert ids.tolist() == [[1, 2, 3]]


def test_ops_that_cannot_grow_their_operand_run_for_real_without_a_rehearsal() -> None:
    """A view, a conversion or arithmetic with a number has at most as many elements as its
    one operand: it runs once, for real. A gather by a list of ids can grow: rehearsed on
    fakes first, and kept fake past the limit of real values."""
    calls: list[str] = []

    def counted(op):  # type: ignore[no-untyped-def]
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append("fake" if is_fake(args[0]) else "real")
            return op(*args, **kwargs)

        run.__name__ = op.__name__
        return run

    ids = torch.arange(6).view(2, 3)
    with FakeRun() as fake:
        owned = fake.tensor(ids, "cpu")
        for op, args in ((torch.Tensor.view, (owned, 3, 2)), (torch.Tensor.float, (owned,)),
                         (torch.Tensor.__add__, (owned, 1)),
                         (torch.Tensor.__getitem__, (owned, (slice(None), None, 0)))):  # fmt: skip
            calls.clear()
            out = fake.run_real(counted(op), args, {})
            assert calls == ["real"] and fake.owns(out), op.__name__
        calls.clear()
        gathered = fake.run_real(counted(torch.Tensor.__getitem__), (owned, [0, 1, 1]), {})
        assert calls == ["fake", "real"] and gathered.tolist() == [[0, 1, 2], [3, 4, 5], [3, 4, 5]]
        huge = fake.run_real(torch.Tensor.__getitem__, (owned, [0] * (1 << 21)), {})
        assert is_fake(huge) and huge.shape == (1 << 21, 3)


class Shifted(nn.Module):
    """Ids computed from the input ids for real, then looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids + 5)


def test_ids_computed_from_ids_are_still_checked_for_real() -> None:
    assert inspector.check(Shifted(), torch.tensor([[1, 2, 4]])).ok
    result = inspector.check(Shifted(), torch.tensor([[1, 2, 5]]))  # 5 + 5 is out of range
    assert not result.ok


def test_a_lookup_gets_one_fake_of_its_ids_for_the_run() -> None:
    ids = torch.tensor([[1, 2]])
    with FakeRun() as fake:
        owned = fake.tensor(ids, "cpu")
        weight = fake.empty((5, 3), torch.float32, "cpu")
        (first, w), _ = fake.lookup_operands((owned, weight), {})
        _, kw = fake.lookup_operands((), {"input": owned})
        assert is_fake(first) and w is weight and kw["input"] is first
        assert first.shape == (1, 2) and first.dtype == torch.int64
        grown = fake.run_real(torch.cat, ([owned, owned],), {"dim": 1})
        (other,), _ = fake.lookup_operands((grown,), {})
        assert other is not first and other.shape == (1, 4)


class LooksUpTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        first = self.emb(ids)
        ids.add_(3)  # for real, on the run's own copy
        return first + self.emb(ids)


def test_ids_changed_in_place_between_lookups_are_checked_again() -> None:
    ids = torch.tensor([[0, 1]])
    assert inspector.check(LooksUpTwice(), ids).ok
    assert not inspector.check(LooksUpTwice(), torch.tensor([[0, 3]])).ok  # 3 + 3 >= 6
    assert ids.tolist() == [[0, 1]]
