"""The hang view on a real torchrun job: SIGUSR1 to each rank says where each one is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distributed.torchrun import run_job

pytestmark = pytest.mark.torchrun


def test_each_rank_says_where_it_is(tmp_path: Path) -> None:
    job = run_job("desync.py", via_inspector=["run"], timeout_s=60,
                  env={"DESYNC_DIR": str(tmp_path)})  # fmt: skip
    job.assert_succeeded("done")
    rank0, rank1 = job.stderr.get(0, ""), job.stderr.get(1, "")
    assert "[rank0]: torch-inspector: in the forward of model.module.1 (Slow), pass 1" in rank0, (
        job.describe()
    )
    # rank 1 finished its forward and waits in DDP's gradient all-reduce
    assert "[rank1]: torch-inspector: outside any module, last returned from model" in rank1, (
        job.describe()
    )


def test_a_collective_timeout_says_where_the_rank_was() -> None:
    job = run_job("timeout.py", via_inspector=["run"], timeout_s=60, env={"PG_TIMEOUT": "3"})
    job.assert_ended()
    assert job.returncode != 0
    rank1 = job.stderr.get(1, "")
    assert "Timed out" in rank1 or "timed out" in rank1, job.describe()
    assert (
        "[rank1]: torch-inspector: when the collective timed out: outside any module, "
        "last returned from model (DistributedDataParallel), pass 1" in rank1
    ), job.describe()
