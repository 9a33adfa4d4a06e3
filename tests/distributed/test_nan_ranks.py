"""A NaN born on one rank and spread by the gradient all-reduce: each rank's stop says which."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import run_job

pytestmark = pytest.mark.torchrun


def test_the_rank_with_the_corrupt_batch_and_the_rank_that_received_it() -> None:
    job = run_job("nan.py", via_inspector=["run", "--break", "* if nan"], timeout_s=60)
    job.assert_succeeded("step 2 loss")
    rank1, rank0 = job.stderr.get(1, ""), job.stderr.get(0, "")
    # rank 1, step 1 (pass 2): the batch brought the Inf; no module made it
    assert "torch-inspector [rank 1]: breakpoint * if nan" in rank1 and "(pass 2)" in rank1
    assert "arrives with the input of model on rank 1: the batch itself holds it" in rank1
    assert "0 NaN and 1 Inf of 6144 values" in rank1, job.describe()
    # rank 0 never saw a bad batch: its first NaN comes from weights the all-reduce poisoned
    first = rank0.split("torch-inspector [rank 0]: breakpoint")[1]
    assert "(pass 3)" in first and "because its weights are already non-finite" in first, rank0
    assert "gradient all-reduce averages every rank's gradients" in first
    # what rank 1 posted on the job's store when it stopped
    assert "rank 1 saw it first, in pass 2: NaN/Inf arrives with the input of model" in (
        " ".join(first.split())
    ), rank0
    assert "arrives with the input of model on rank 0" not in rank0
