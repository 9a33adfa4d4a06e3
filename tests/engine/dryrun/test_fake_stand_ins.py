"""The stand-ins a dry run makes without the fake mode's dispatch are the mode's own kind."""

from __future__ import annotations

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
