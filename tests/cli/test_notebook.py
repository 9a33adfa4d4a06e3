"""A notebook run in a real Jupyter kernel: the public objects display as the report does, and
debug() without a terminal explains itself on each call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is a dev dependency")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev dependency")
pytest.importorskip("ipykernel", reason="ipykernel is a dev dependency")

ROOT = Path(__file__).resolve().parents[2]

CELLS = {
    "setup": (
        "import torch\n"
        "from torch import nn\n"
        "import inspector\n"
        "from inspector.demo import build\n"
        "model, (x,) = build()\n"
        "net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())\n"
        "t = inspector.trace(model, x)"
    ),
    "trace": "t",
    "call": "t.calls[1]",
    "diagnosis": "t.diagnosis",
    "findings": "t.findings",
    "check": "inspector.check(model, x)",
    "contributions": "inspector.contributions(net, torch.randn(2, 4), layer='0')",
    "pause": (
        "from inspector.engine.control.debugger import Debugger\n"
        "d = Debugger(net, torch.randn(2, 4))\n"
        "d.start()"
    ),
    "finished": "d.cont()",
    "debug_1": "y = inspector.debug(net, torch.randn(2, 4))",
    "debug_2": "y = inspector.debug(net, torch.randn(2, 4))\nprint('second call', tuple(y.shape))",
    "plain_list": "[1, 2]",
}


@pytest.fixture(scope="module")
def outputs() -> dict[str, list[dict[str, Any]]]:
    """Each cell's outputs, by name: the notebook executed once for every test here."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source, metadata={"name": n}) for n, source in CELLS.items()
    ]
    client = nbclient.NotebookClient(
        nb,
        timeout=90,  # per cell; the first imports torch
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    return {cell.metadata["name"]: cell.outputs for cell in nb.cells}


def html(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


def stream(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def test_trace_displays_as_the_report(outputs: dict[str, list[dict[str, Any]]]) -> None:
    page = html(outputs["trace"])
    assert page.startswith("<pre")
    for words in ("SeedCNN · 3 calls", "conv1", "MaxPool2d", "error in", "view(-1, 27)"):
        assert words in page
    assert "Call(" not in page and "TensorInfo(" not in page  # no dataclass dump


def test_diagnosis_and_findings_display_as_panels(
    outputs: dict[str, list[dict[str, Any]]],
) -> None:
    for name in ("diagnosis", "findings"):
        page = html(outputs[name])
        assert "error in" in page and "3072 values are not a multiple of 27" in page, name
        assert "fix" in page, name
    # The plain text of a Diagnosis is its explanation, not its fields.
    text = outputs["diagnosis"][0]["data"]["text/plain"]
    assert text.startswith("error: (root) (SeedCNN): view(-1, 27)")


def test_check_call_contributions_and_stops_display(
    outputs: dict[str, list[dict[str, Any]]],
) -> None:
    assert "module calls checked, 3 error(s)" in html(outputs["check"])
    assert "Conv2d" in html(outputs["call"])
    assert "contributions of 0 to" in html(outputs["contributions"])
    assert "paused before (root) (Sequential)" in html(outputs["pause"])
    assert "Sequential · 3 calls" in html(outputs["finished"])


def test_debug_explains_itself_on_each_call(outputs: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("debug_1", "debug_2"):
        cell = outputs[name]
        assert not [o for o in cell if o["output_type"] == "error"], name
        assert stream(cell).count("no terminal here") == 1, name
        assert "Debugger(model, x)" in stream(cell), name
        assert "Sequential · 3 calls" in html(cell), name  # the report, drawn as HTML
    assert "second call (2, 3)" in stream(outputs["debug_2"])


def test_other_lists_keep_their_display(outputs: dict[str, list[dict[str, Any]]]) -> None:
    (result,) = outputs["plain_list"]
    assert result["data"] == {"text/plain": "[1, 2]"}
