"""Trace.to_json / from_json: a plain, validated round trip."""

from __future__ import annotations

import json

import pytest
import torch

import inspector
from inspector.engine.serialize import TraceFormatError
from tests.models import ZOO


@pytest.mark.parametrize("name", ["mlp", "dict_output", "lstm", "tiny_gpt", "non_tensor_args"])
def test_round_trip_is_equal(name: str) -> None:
    model, args, kwargs = ZOO[name].build()
    t = inspector.trace(model, *args, **kwargs)
    back = inspector.Trace.from_json(t.to_json())
    assert back.calls == t.calls
    assert back.findings == t.findings
    assert back.to_json() == t.to_json()


def test_round_trip_keeps_the_error_and_diagnosis() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(6, 2))
    t = inspector.trace(model, torch.randn(2, 4))
    back = inspector.Trace.from_json(t.to_json(indent=1))
    assert back.error is not None and str(back.error) == str(t.error)
    assert repr(back.error).startswith("RuntimeError(")
    assert back.diagnosis == t.diagnosis
    assert back.find("1").status == "error"


def test_non_finite_statistics_survive() -> None:
    x = torch.tensor([float("nan"), 1.0])
    t = inspector.trace(torch.nn.Identity(), x)
    text = t.to_json()
    json.loads(text)  # valid JSON for the standard library
    stats = inspector.Trace.from_json(text).calls[0].inputs[0].stats
    assert stats is not None and stats.nan == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid JSON"),
        ("[]", "format="),
        ('{"format": "torch-inspector-trace", "version": 99}', "unsupported trace version 99"),
        (
            '{"format": "torch-inspector-trace", "version": 1, "calls": 3, "findings": []}',
            "'calls' must be a list",
        ),
        (
            '{"format": "torch-inspector-trace", "version": 1, "calls": [{"seq": 0}], '
            '"findings": []}',
            "malformed trace file",
        ),
    ],
)
def test_malformed_documents_give_clear_errors(text: str, message: str) -> None:
    with pytest.raises(TraceFormatError, match=message):
        inspector.Trace.from_json(text)


def test_out_of_order_calls_rejected() -> None:
    t = inspector.trace(torch.nn.Sequential(torch.nn.Identity()), torch.ones(1))
    doc = json.loads(t.to_json())
    doc["calls"][1]["parent"] = 5
    with pytest.raises(TraceFormatError, match="out of order"):
        inspector.Trace.from_json(json.dumps(doc))


def test_malformed_gradients_and_units_are_clear_errors() -> None:
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    t = inspector.trace(model, torch.randn(8, 3), loss_fn=lambda o, _: o.sum(), backward=True)
    doc = json.loads(t.to_json())
    for key, bad in (("grad", [1, 2]), ("grad", {"outputs": "x"}), ("units", "dead")):
        broken = json.loads(json.dumps(doc))
        broken["calls"][1][key] = bad
        with pytest.raises(TraceFormatError, match="malformed trace file"):
            inspector.Trace.from_json(json.dumps(broken))
