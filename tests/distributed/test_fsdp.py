"""FSDP2 on a real 2-rank job: gradients recorded, training unchanged."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import run_job

pytestmark = pytest.mark.torchrun


def test_a_session_records_fsdp2_gradients_and_changes_no_weight() -> None:
    plain = run_job("fsdp.py", "plain", timeout_s=90)
    attached = run_job("fsdp.py", "attach", timeout_s=90)
    for job in (plain, attached):
        job.assert_succeeded("weights")
    for rank in (0, 1):
        assert attached.lines(rank, "step 2 fc1 grads") == ["['weight', 'bias']"], (
            attached.describe()
        )
        assert attached.lines(rank, "weights") == plain.lines(rank, "weights") != []
