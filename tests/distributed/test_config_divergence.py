"""A config that differs across ranks (hidden=48 on rank 1, 32 on rank 0) is named through the
c10d store, by parameter name and both shapes, before DDP's own check fails by index. The
shapes are posted before the process group exists: the exchange needs no group."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import run_job

pytestmark = pytest.mark.torchrun


def test_parameter_shapes_compared_through_the_store_name_the_parameter() -> None:
    job = run_job("config.py", timeout_s=60)
    job.assert_ended()
    expected = ["fc1.weight (48, 256) on rank 1 vs (32, 256) on rank 0"]
    for rank in (0, 1):
        # posted through torchrun's own store before the group existed, read through the group's
        assert job.lines(rank, "store before the group:") == ["TCPStore"], job.describe()
        assert job.lines(rank, "parameter divergence:") == expected, job.describe()
    assert job.returncode != 0
    assert "params[6]" in job.output(1), "DDP's own check still runs and fails"


def test_explain_names_the_parameter_that_differs_when_ddp_refuses_the_model() -> None:
    job = run_job("config_explain.py", timeout_s=60)
    job.assert_ended()
    assert job.returncode != 0
    notes = " ".join(job.lines(1, "note:"))  # DDP's check fails on rank 1
    assert "fc1.weight (48, 256) on rank 1 vs (32, 256) on rank 0" in notes, job.describe()
