"""Rank 1's second batch is 20x20, rank 0's are 16x16: rank 1 fails in fc1 while rank 0 waits in
the gradient all-reduce. Under each entry point the job must end (torchrun stops rank 0 when
rank 1 exits), with rank 1's real error printed by rank 1.

Once in about ten runs under `run --post-mortem`, rank 0 aborted (SIGABRT) on the closed
connection before torchrun had seen rank 1 exit, and torchrun named rank 0 as the root cause.
`run` now leaves the failing rank's error file as torch's `@record` does, and torchrun's
summary names the rank whose error file it has."""

from __future__ import annotations

import re

import pytest

from tests.distributed.torchrun import Job, run_job

pytestmark = pytest.mark.torchrun

REAL_ERROR = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (8x400 and 256x32)"


@pytest.fixture(scope="module")
def explained() -> Job:
    return run_job("shape.py", "explain", timeout_s=60)


@pytest.fixture(scope="module")
def traced() -> Job:
    return run_job("shape.py", "trace", timeout_s=60)


@pytest.fixture(scope="module")
def post_mortem() -> Job:
    # The ranks' stdin is not a terminal: `run` prints each failure's explanation and goes on.
    return run_job("shape.py", "plain", via_inspector=["run", "--post-mortem"], timeout_s=60)


def assert_rank1_failed_for_real(job: Job) -> None:
    job.assert_ended()
    assert job.returncode != 0, job.describe()
    assert REAL_ERROR in job.stderr.get(1, ""), job.describe()
    assert "mat1 and mat2" not in job.output(0), "rank 0 failed only as a consequence"
    assert "FAILED" in job.agent, job.describe()


def test_explain_ends_the_job_with_the_real_error_and_its_note(explained: Job) -> None:
    assert_rank1_failed_for_real(explained)
    rank1 = explained.stderr[1]
    assert "torch-inspector:" in rank1
    assert re.search(r"fc1 expects 256 input features but its input \(8, 400\)", rank1), rank1
    assert f"[rank1]: {REAL_ERROR}" in rank1  # torch's rank prefix kept on every line
    # the layers are the same on every rank (DDP checked): the data of rank 1 comes first
    fixes = rank1[rank1.index("fix:") :]
    assert "- look at rank 1's data first" in fixes and "(8, 3, 20, 20)" in fixes, rank1
    assert "- if every rank's data has this shape: module.fc1 = nn.Linear(400, 32)" in fixes


def test_trace_of_the_inner_module_ends_the_job_with_the_real_error(traced: Job) -> None:
    assert_rank1_failed_for_real(traced)
    assert traced.lines(1, "step 1 trace error:") == [REAL_ERROR.split(": ", 1)[1]]


def test_ranks_compared_through_the_store_name_both_input_shapes(traced: Job) -> None:
    traced.assert_ended()
    assert traced.lines(0, "step 0 divergence:") == ["None"]
    assert traced.lines(0, "step 1 posted by ranks") == ["[0, 1]"]
    assert traced.lines(0, "step 1 divergence:") == [
        "(root) input (8, 3, 20, 20) on rank 1 vs (8, 3, 16, 16) on rank 0"
    ], traced.describe()


def test_post_mortem_ends_the_job_with_the_real_error(post_mortem: Job) -> None:
    assert_rank1_failed_for_real(post_mortem)
    explanation = post_mortem.stderr[1].split("Traceback (most recent call last)")[0]
    # every line the inspector writes names its rank
    assert "torch-inspector [rank 1]: " in explanation, post_mortem.describe()
    assert "fc1" in explanation, post_mortem.describe()


def test_post_mortem_keeps_torchs_rank_prefix_on_the_traceback(post_mortem: Job) -> None:
    # Run alone, the script's traceback reads "[rank1]: RuntimeError: ..." (torch prefixes
    # every line once a group exists); under `run` it must read the same.
    post_mortem.assert_ended()
    assert f"[rank1]: {REAL_ERROR}" in post_mortem.stderr.get(1, ""), post_mortem.describe()


def test_post_mortem_names_the_real_error_in_torchruns_root_cause(post_mortem: Job) -> None:
    """Under `run` the rank's error file is written as torch's @record writes it: torchrun's
    summary shows the real error and its explanation, not "To enable traceback see"."""
    post_mortem.assert_ended()
    cause = post_mortem.agent.split("Root Cause (first observed failure):")[-1]
    # rank 1's exit code there is 1, or -15 when rank 0 aborted on the closed connection
    # first and torchrun stopped rank 1: its error file still makes it the root cause
    assert "rank      : 1 (local_rank: 1)" in cause, cause
    assert REAL_ERROR in cause and "To enable traceback see" not in cause, cause
    assert "- look at rank 1's data first" in cause, cause


def test_post_mortem_explanation_puts_rank_1s_data_first(post_mortem: Job) -> None:
    explanation = post_mortem.stderr[1].split("Traceback (most recent call last)")[0]
    assert "look at rank 1's data first" in explanation, post_mortem.describe()
    # what rank 0 posted on the job's store at the start of its latest pass (this step's,
    # or the one before when rank 1 fails first): both ranks' values
    flat = " ".join(explanation.replace("│", " ").split())
    both = r"rank 0's input in pass [12]: \(8, 3, 16, 16\) \(rank 1's: \(8, 3, 20, 20\)\)"
    assert re.search(both, flat), flat
