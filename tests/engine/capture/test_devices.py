"""Device policy: every generator the program draws from is kept; accumulation types."""

from __future__ import annotations

import torch

from inspector.engine.capture.devices import rng_kept, rng_state, set_rng_state, wide_float


def test_the_generators_come_back_after_the_inspectors_own_draws() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    with rng_kept():
        torch.rand(1000)  # draws the program never made
    assert torch.equal(torch.rand(4), expected)


def test_a_state_taken_can_be_put_back() -> None:
    state = rng_state()
    assert "cpu" in state
    first = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), first)


def test_statistics_accumulate_in_the_widest_float_the_device_has() -> None:
    assert wide_float(torch.device("cpu")) == torch.float64
    assert wide_float(torch.device("mps")) == torch.float32
