"""DDP's unused-parameter error on a real 2-rank job: the note names the parameters."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import run_job

pytestmark = pytest.mark.torchrun


def test_unused_parameters_are_named_not_numbered() -> None:
    job = run_job("unused.py", timeout_s=60)
    job.assert_ended()
    err = job.stderr.get(1, "")
    assert "Parameter indices which did not receive grad for rank 1" in err, job.describe()
    assert (
        "torch-inspector: rank 1's previous step gave no gradient to aux.weight, aux.bias" in err
    ), job.describe()
    assert "the forward skipped aux (Linear) on that rank" in err
    assert "find_unused_parameters=True" in err
