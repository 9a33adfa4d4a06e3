"""Trace.to_json / from_json: a plain, validated round trip."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inspector
from inspector.engine.records.serialize import TraceFormatError
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


# -- any document: a Trace that renders, or a ValueError ----------------------------------


def _rich_trace_doc() -> dict[str, object]:
    """A document with every kind of field: a failed call with its diagnosis (op, line,
    fixes), statistics with NaN, gradients and units from a backward pass, kwargs, structs."""
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(8, 3)
    x[0, 0] = float("nan")
    good = inspector.trace(model, x, loss_fn=lambda o, _: o.sum(), backward=True)
    bad = inspector.trace(nn.Sequential(nn.Linear(4, 8), nn.Linear(7, 2)), torch.randn(3, 4))
    doc = json.loads(good.to_json())
    broken = json.loads(bad.to_json())
    doc["error"] = broken["error"]
    doc["findings"] = broken["findings"]
    doc["calls"][1]["kwargs"] = {"s": "kwargs", "fields": [["mask", {"tuple": [1, 2.5, None]}]]}
    return doc


_DOC = _rich_trace_doc()

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 1e308, -1e308, 0.5, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["nan", "inf", "-inf", "t", "s", "tuple", "float", "ok", "error"]),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["t", "s", "tuple", "float", "fields", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)


def _render(t: inspector.Trace) -> None:
    from rich.console import Console

    from inspector.render import CallDetail
    from inspector.reporting import print_trace

    for width in (60, 120):
        console = Console(file=io.StringIO(), width=width)
        print_trace(t, console)
        for call in t.calls:
            for selected in range(4):
                console.print(CallDetail(call, selected=selected))


def _mutate(doc: object, data: st.DataObject) -> object:
    """`doc` with one place in it replaced, deleted or (for a list) extended."""
    doc = copy.deepcopy(doc)
    parent: object = None
    key: object = None
    node = doc
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 3)) > 0:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys))
        node = node[key]  # type: ignore[index]
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "append"]))
    if parent is None:
        return data.draw(_json_value) if action == "replace" else doc
    if action == "delete":
        del parent[key]  # type: ignore[attr-defined]
    elif action == "append" and isinstance(node, list):
        node.append(data.draw(_json_value))
    else:
        parent[key] = data.draw(_json_value)  # type: ignore[index]
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_from_json_of_any_mutated_document_renders_or_raises_value_error(
    data: st.DataObject,
) -> None:
    doc = _DOC
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate(doc, data)
    text = json.dumps(doc, allow_nan=True)
    try:
        t = inspector.Trace.from_json(text)
    except ValueError:
        return
    _render(t)


def test_the_unmutated_document_renders() -> None:
    _render(inspector.Trace.from_json(json.dumps(_DOC)))


# -- the format's versions -----------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def test_every_record_names_its_fields() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    t = inspector.trace(
        model,
        torch.randn(2, 4),
        loss_fn=torch.nn.CrossEntropyLoss(),
        target=torch.tensor([0, 2]),
        backward=True,
    )
    doc = json.loads(t.to_json())
    assert doc["version"] == 2
    tensor = doc["calls"][1]["inputs"][0]
    assert tensor["tensor"] == {
        "shape": [2, 4],
        "dtype": "float32",
        "device": "cpu",
        "requires_grad": False,
        "layout": "strided",
        "contiguous": True,
    }
    stats = tensor["stats"]
    assert stats["numel"] == 8 and stats["nan"] == 0 and len(stats["histogram_range"]) == 2
    assert set(stats) == {
        "numel", "mean", "std", "min", "max", "nan", "inf", "zero_fraction", "histogram",
        "histogram_range", "sampled",
    }  # fmt: skip
    assert doc["calls"][1]["call_site"]["file"].endswith("test_serialize.py")
    grad = doc["calls"][1]["grad"]
    assert [p["name"] for p in grad["params"]] == ["weight", "bias"]
    assert grad["params"][0]["grad_norm"] > 0 and grad["params"][0]["norm"] > 0


def test_a_version_1_file_still_loads() -> None:
    """Files written before fields were named (arrays for tensors, statistics, lines) read
    back into the same records, and are written again as version 2."""
    error = inspector.Trace.from_json((DATA / "trace_v1_error.json").read_text())
    diag = error.diagnosis
    assert diag is not None and diag.module == "fc"
    assert diag.line is not None and diag.line.lineno == 12 and diag.line.function == "forward"
    assert "nn.Linear(64, 3)" in " ".join(diag.fixes)
    assert error.find("conv").outputs.shape == (2, 4, 4, 4)
    back = inspector.Trace.from_json(error.to_json())
    assert back.calls == error.calls and back.findings == error.findings

    grads = inspector.Trace.from_json((DATA / "trace_v1_backward.json").read_text())
    first = grads.find("0")
    assert first.grad is not None and [p[0] for p in first.grad.params] == ["weight", "bias"]
    assert first.inputs[0].stats is not None and first.inputs[0].stats.numel == 8
    assert json.loads(grads.to_json())["version"] == 2


def test_a_version_1_record_in_a_version_2_file_is_refused() -> None:
    doc = json.loads((DATA / "trace_v1_error.json").read_text())
    doc["version"] = 2
    with pytest.raises(TraceFormatError, match="unknown value with keys"):
        inspector.Trace.from_json(json.dumps(doc))


def test_a_newer_version_says_which_versions_are_read() -> None:
    with pytest.raises(TraceFormatError, match=r"reads 1, 2; a newer torch-inspector"):
        inspector.Trace.from_json('{"format": "torch-inspector-trace", "version": 3}')
