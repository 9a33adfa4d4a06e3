"""A healthy 2-rank DDP job trained under each entry point trains exactly as without one."""

from __future__ import annotations

import pytest

from tests.distributed.torchrun import Job, run_job

pytestmark = pytest.mark.torchrun

MODES = ("plain", "trace", "explain", "attach")


@pytest.fixture(scope="module")
def job() -> Job:
    return run_job("healthy.py", *MODES, timeout_s=60)


def digests(job: Job, rank: int, what: str) -> dict[str, str]:
    found = dict(line.split() for line in job.lines(rank, what))
    assert set(found) == set(MODES), job.describe()
    return found


def test_the_job_ends_cleanly_on_both_ranks(job: Job) -> None:
    # exit 0, or gloo's abort of a rank leaving its group after its last line (Job's note)
    job.assert_succeeded("seconds attach")
    for rank in (0, 1):
        assert len(job.lines(rank, "seconds")) == len(MODES), job.describe()


def test_weights_are_bit_identical_with_and_without_the_inspector(job: Job) -> None:
    by_rank = [digests(job, rank, "weights") for rank in (0, 1)]
    assert by_rank[0] == by_rank[1], "DDP keeps the ranks' weights equal"
    assert set(by_rank[0].values()) == {by_rank[0]["plain"]}, by_rank[0]


def test_explain_and_attach_leave_the_whole_state_as_a_plain_run_does(job: Job) -> None:
    # Buffers too (BatchNorm's running statistics). Not for `trace`: its look is a forward of
    # its own that the user asked for, and a forward in training mode moves running stats.
    for rank in (0, 1):
        state = digests(job, rank, "state")
        assert state["explain"] == state["attach"] == state["plain"], (rank, state)


def test_the_look_at_model_module_recorded_every_call(job: Job) -> None:
    for rank in (0, 1):
        looks = job.lines(rank, "trace trace")
        assert looks == [f"step {s}: 9 calls, error None" for s in range(3)], job.describe()
