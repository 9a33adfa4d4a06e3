"""Comparing ranks without a job: call summaries, the first divergence, parameter shapes, the
bounded JSON payload, and the store exchange on an in-process store."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.distributed import (
    Divergence,
    call_summaries,
    encode_summary,
    first_divergence,
    parameter_divergence,
    parameter_shapes,
    post_summary,
    read_summaries,
    summarize,
)


class Net(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(256, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def call(path: str, ins: list[list[int]], outs: list[list[int]], **extra: object) -> dict:
    summary = {
        "path": path,
        "index": 0,
        "type": "Linear",
        "in": ins,
        "in_dtypes": ["float32"] * len(ins),
        "params": {},
        "out": outs,
        "out_dtypes": ["float32"] * len(outs),
        "status": "ok",
    }
    summary.update(extra)
    return summary


def passes_of(*models_and_inputs: tuple[nn.Module, torch.Tensor]) -> dict[int, list[dict]]:
    torch.manual_seed(0)
    return {
        rank: call_summaries(inspector.trace(model, x).calls, model)
        for rank, (model, x) in enumerate(models_and_inputs)
    }


def test_ranks_that_agree_have_no_divergence() -> None:
    passes = passes_of((Net(), torch.randn(8, 16, 4, 4)), (Net(), torch.randn(8, 16, 4, 4)))
    assert first_divergence(passes) is None


def test_input_shape_names_the_module_and_both_ranks_values() -> None:
    a = [call("", [[8, 256]], [[8, 10]]), call("fc1", [[8, 256]], [[8, 32]])]
    b = [call("", [[8, 256]], [[8, 10]]), call("fc1", [[8, 400]], [[8, 32]])]
    found = first_divergence({0: a, 1: b})
    assert isinstance(found, Divergence)
    assert str(found) == "fc1 input (8, 400) on rank 1 vs (8, 256) on rank 0"
    assert (found.module, found.aspect, found.call, found.odd_ranks) == ("fc1", "input", 1, (1,))


def test_a_real_shape_bug_diverges_first_at_the_root_input() -> None:
    # Rank 1's batch is 8x16x5x5: its pass fails in fc1, rank 0's runs to the end.
    passes = passes_of((Net(), torch.randn(8, 16, 4, 4)), (Net(), torch.randn(8, 16, 5, 5)))
    assert passes[1][-1]["status"] == "error"
    assert str(first_divergence(passes)) == (
        "(root) input (8, 16, 5, 5) on rank 1 vs (8, 16, 4, 4) on rank 0"
    )


def test_a_config_that_differs_names_the_parameter_before_the_output() -> None:
    x = torch.randn(8, 256)
    passes = passes_of((Net(32), x), (Net(48), x))
    found = first_divergence(passes)
    assert str(found) == "fc1.weight (48, 256) on rank 1 vs (32, 256) on rank 0"
    assert found is not None and found.aspect == "parameter weight"


def test_dtype_and_failure_are_compared_after_shapes() -> None:
    a = [call("fc1", [[4, 2]], [[4, 2]])]
    half = [call("fc1", [[4, 2]], [[4, 2]], in_dtypes=["float16"])]
    failed = [call("fc1", [[4, 2]], [], status="error")]
    assert str(first_divergence({0: a, 1: half})) == (
        "fc1 input dtype float16 on rank 1 vs float32 on rank 0"
    )
    assert (
        str(first_divergence({0: a, 1: failed}))
        == "fc1 output no tensor on rank 1 vs (4, 2) on rank 0"
    )
    same_out_failed = [call("fc1", [[4, 2]], [[4, 2]], status="error")]
    assert (
        str(first_divergence({0: a, 1: same_out_failed})) == "fc1 failed on rank 1 vs ran on rank 0"
    )


def test_different_modules_or_a_shorter_pass_name_the_call() -> None:
    a = [call("", [[1]], [[1]]), call("fc1", [[1]], [[1]]), call("fc2", [[1]], [[1]])]
    b = [call("", [[1]], [[1]]), call("fc2", [[1]], [[1]])]
    assert str(first_divergence({0: a, 1: b})) == (
        "call 2 of the pass is fc2 (Linear) on rank 1 vs fc1 (Linear) on rank 0"
    )
    assert str(first_divergence({0: a, 1: a[:2]})) == (
        "call 3 of the pass is nothing on rank 1 vs fc2 (Linear) on rank 0"
    )


def test_the_majority_is_the_reference_and_missing_ranks_are_left_out() -> None:
    good = [call("fc1", [[8, 256]], [[8, 32]])]
    odd = [call("fc1", [[8, 400]], [[8, 32]])]
    found = first_divergence({0: good, 1: good, 2: odd, 3: None})  # rank 3 posted nothing
    assert str(found) == "fc1 input (8, 400) on rank 2 vs (8, 256) on ranks 0, 1"
    assert first_divergence({0: good, 1: None}) is None
    # a whole summarize() document is accepted as well as its calls
    assert str(first_divergence({0: {"calls": good}, 1: {"calls": odd}})).startswith("fc1 input")


def test_parameter_divergence_names_the_parameter_with_both_shapes() -> None:
    shapes = {0: parameter_shapes(Net(32)), 1: parameter_shapes(Net(48))}
    found = parameter_divergence(shapes)
    assert str(found) == "fc1.weight (48, 256) on rank 1 vs (32, 256) on rank 0"
    assert found is not None and found.odd_ranks == (1,)
    assert parameter_divergence({0: parameter_shapes(Net()), 1: parameter_shapes(Net())}) is None
    assert parameter_divergence({0: parameter_shapes(Net()), 1: None}) is None
    documents = {r: summarize([], Net(h)) for r, h in ((0, 32), (1, 32), (2, 48))}
    assert str(parameter_divergence(documents)) == (
        "fc1.weight (48, 256) on rank 2 vs (32, 256) on ranks 0, 1"
    )
    extra = dict(parameter_shapes(Net()), **{"head.weight": [2, 10]})
    assert str(parameter_divergence({0: parameter_shapes(Net()), 1: extra})) == (
        "head.weight (2, 10) on rank 1 vs absent on rank 0"
    )


def test_summaries_are_plain_json_with_parameter_shapes() -> None:
    model = Net()
    t = inspector.trace(model, torch.randn(2, 256))
    summary = summarize(t.calls, model, step=3)
    assert json.loads(json.dumps(summary)) == summary
    fc1 = next(c for c in summary["calls"] if c["path"] == "fc1")
    assert fc1["in"] == [[2, 256]] and fc1["out"] == [[2, 32]]
    assert fc1["params"] == {"weight": [32, 256], "bias": [32]}
    assert summary["params"]["fc2.weight"] == [10, 32] and summary["step"] == 3


def test_a_large_summary_is_cut_to_the_limit_and_says_so() -> None:
    calls = [call(f"layers.{i}", [[8, 256]], [[8, 256]]) for i in range(2000)]
    data = encode_summary({"calls": calls, "step": 1}, limit=20_000)
    assert len(data) <= 20_000
    decoded = json.loads(data)
    assert decoded["truncated"] == 2000 - len(decoded["calls"]) > 0
    assert decoded["calls"] == calls[: len(decoded["calls"])]
    with pytest.raises(ValueError, match="over the 100 bytes"):
        encode_summary({"note": "x" * 200}, limit=100)


def test_the_store_exchange_waits_no_longer_than_its_deadline() -> None:
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch was built without torch.distributed")
    store = dist.HashStore()
    post_summary(store, "step0", 0, {"calls": [], "who": 0})
    post_summary(store, "step0", 1, {"calls": [], "who": 1})
    store.set("torch-inspector/step0/rank2", "not json")
    start = time.monotonic()
    found = read_summaries(store, "step0", 4, timeout_s=0.3)  # rank 3 never posts
    assert time.monotonic() - start < 2.0
    assert found == {0: {"calls": [], "who": 0}, 1: {"calls": [], "who": 1}, 2: None, 3: None}
