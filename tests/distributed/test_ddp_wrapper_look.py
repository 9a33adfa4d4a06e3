"""`inspector.trace` / `inspector.check` on the DDP wrapper itself, from rank 0 only, between two
real steps. DDP's forward is a collective (a buffer broadcast, and the bucket rebuild after the
first step): a look that ran it on one rank would put the ranks out of step. Correct: the look
inspects the wrapper's .module, both real steps complete, the weights agree."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import Job, run_job

pytestmark = pytest.mark.torchrun


def look(mode: str) -> Job:
    # PG_TIMEOUT: a desync fails within seconds instead of waiting for the 40 s limit.
    return run_job("wrapper.py", mode, timeout_s=40, env={"PG_TIMEOUT": "5"})


def assert_ranks_stayed_in_step(job: Job) -> None:
    # exit 0, or gloo's abort of a rank leaving its group after its last line (Job's note)
    job.assert_succeeded("weights")
    for rank in (0, 1):
        assert job.lines(rank, "step") == ["0 done", "1 done"], job.describe()
    assert job.lines(0, "weights") == job.lines(1, "weights"), job.describe()


def test_trace_of_the_ddp_wrapper_on_one_rank_keeps_the_ranks_in_step() -> None:
    job = look("trace")
    assert_ranks_stayed_in_step(job)
    assert job.lines(0, "look:") == ["9 calls, error None"], job.describe()
    assert job.lines(0, "root:") == ["SmallCNN"], "the wrapper's forward was run"


def test_check_of_the_ddp_wrapper_on_one_rank_keeps_the_ranks_in_step() -> None:
    job = look("check")
    assert_ranks_stayed_in_step(job)
    assert job.lines(0, "look:") == ["0 findings, errors []"], job.describe()
    assert job.lines(0, "root:") == ["SmallCNN"], "the wrapper's forward was run"
