"""Renderables drawn on a fixed-width console, compared as text."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console, RenderableType
from torch import nn

import inspector
from inspector.render import CallDetail, DiagnosisPanel, Histogram, TraceTable, number
from inspector.render.text import io_shapes
from tests.helpers import load_example


def draw(renderable: RenderableType, width: int = 80) -> list[str]:
    console = Console(width=width, file=io.StringIO(), no_color=True, record=True)
    console.print(renderable)
    return console.export_text().rstrip("\n").splitlines()


@pytest.fixture(scope="module")
def seed_trace() -> inspector.Trace:
    model, args = load_example("seed_cnn").build()
    return inspector.trace(model, *args)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.31415926, "0.3142"), (-12.5, "-12.5"), (3.1e-5, "3.1e-05"), (123456.0, "1.2e+05"),
     (0.0, "0"), (float("nan"), "nan"), (float("-inf"), "-inf")],
)  # fmt: skip
def test_number(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize("width", [60, 80, 120])
def test_trace_table_fits_the_width(seed_trace: inspector.Trace, width: int) -> None:
    lines = draw(TraceTable(seed_trace.calls), width)
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    assert "conv1" in text and "(4, 3, 32, 32) → ✗" in text  # the failed root
    if width >= 80:  # narrower, long shapes fold onto a second line
        assert "(4, 3, 32, 32) → (4, 3, 32, 32)" in text
    if width >= 100:
        assert "params" in text


def test_diagnosis_panel_shows_line_op_and_fix(seed_trace: inspector.Trace) -> None:
    assert seed_trace.diagnosis is not None
    text = "\n".join(draw(DiagnosisPanel(seed_trace.diagnosis)))
    assert "✗ error in (root) (SeedCNN)" in text
    assert "❱ 21         x = x.view(-1, 3 * 3 * 3)" in text
    assert "op view((4, 3, 16, 16), -1, 27)" in text
    assert "→ x = x.flatten(1) gives (4, 768)" in text


def test_call_detail_lists_tensors_and_flags_nan() -> None:
    x = torch.tensor([[1.0, float("nan")], [0.0, 2.0]])
    t = inspector.trace(nn.Identity(), x)
    lines = draw(CallDetail(t.calls[0]), 80)
    header = next(line for line in lines if "shape" in line)
    assert header.split() == ["shape", "dtype", "mean", "std", "min", "max", "zero", "NaN", "Inf"]
    row = next(line for line in lines if line.startswith("in[0]"))
    assert row.split()[:3] == ["in[0]", "(2,", "2)"] and row.split()[-2:] == ["1", "0"]


def test_call_detail_narrow_drops_columns() -> None:
    t = inspector.trace(nn.Linear(3, 2), torch.ones(4, 3))
    lines = draw(CallDetail(t.calls[0]), 50)
    header = next(line for line in lines if "shape" in line)
    assert "dtype" not in header and "mean" in header


def test_histogram_draws_one_bar_per_bin() -> None:
    x = torch.arange(1000, dtype=torch.float32)
    stats = inspector.trace(nn.Identity(), x).calls[0].inputs[0].stats
    assert stats is not None
    bars = draw(Histogram(stats))[0].split()[1]
    assert len(bars) == len(stats.histogram) == 24
    assert set(bars) == {"█"}  # uniform values: every bin equally full


def test_io_shapes_of_running_and_failed_calls(seed_trace: inspector.Trace) -> None:
    assert io_shapes(seed_trace.calls[0]) == "(4, 3, 32, 32) → ✗"
    running = inspector.Call(0, "", 0, "Net", 0, None, seed_trace.calls[0].inputs)
    assert io_shapes(running) == "(4, 3, 32, 32) → …"


def test_heat_map_in_colour_uses_half_blocks_and_without_colour_shades() -> None:
    from inspector.engine.capture.values import heatmap
    from inspector.render.heatmap import HeatMapView

    x = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]] * 4)
    heat = heatmap(x, label="fc out")
    plain = draw(HeatMapView(heat))
    assert plain[0] == "heat map of fc out"
    assert plain[1:5] == [" ░▒▓█"] * 4  # one cell per character, dark to bright
    assert "' ' 0 → '█' 4" in plain[5]
    console = Console(width=40, file=io.StringIO(), color_system="truecolor", record=True)
    console.print(HeatMapView(heat))
    text = console.export_text(styles=True, clear=False)
    lines = console.export_text().splitlines()
    assert lines[1:3] == ["▀▀▀▀▀", "▀▀▀▀▀"]  # two cells per character
    assert "dark 0 → bright 4" in lines[3] and "\x1b[" in text
    signed = draw(HeatMapView(heatmap(torch.tensor([[-2.0, 0.0, 2.0]]))))
    assert signed[1] == "█ █" and "|2|" in signed[2]
    assert draw(HeatMapView("overwritten in place"))[0] == "heat map: overwritten in place"


def test_call_detail_shows_gradients_units_and_the_heat_map() -> None:
    from inspector.engine.capture.values import heatmap

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    t = inspector.trace(model, torch.randn(2, 4), loss_fn=nn.CrossEntropyLoss(),
                        target=torch.tensor([0, 2]), backward=True)  # fmt: skip
    text = "\n".join(draw(CallDetail(t.find("0"), heat=heatmap(torch.zeros(2, 8))), 100))
    assert "grad out" in text and "param grads  weight |g|" in text
    assert "of |w|" in text and "heat map of tensor" in text
    relu = "\n".join(draw(CallDetail(t.find("1")), 100))
    assert "dead units: 3 of 8" in relu


def test_under_torchrun_parameter_gradients_say_they_are_the_ranks_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hooks see a parameter's gradient before DDP averages it across the ranks."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    t = inspector.trace(model, torch.randn(2, 4), loss_fn=nn.CrossEntropyLoss(),
                        target=torch.tensor([0, 2]), backward=True)  # fmt: skip
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    text = "\n".join(draw(CallDetail(t.find("0")), 120))
    assert "param grads (rank 1's own, before the ranks are averaged)  weight |g|" in text


def test_a_running_call_shows_a_placeholder_row_that_does_not_widen_the_table() -> None:
    import dataclasses

    t = inspector.trace(nn.Sequential(nn.Linear(16, 2)), torch.randn(32, 16))
    running = dataclasses.replace(t.calls[1], status="running", outputs=None)
    lines = draw(CallDetail(running), 56)
    header = next(line for line in lines if "shape" in line)
    assert "max" in header and len(header.rstrip()) < 48  # the columns keep their widths
    assert any(line.startswith("out    running: appears when the call returns") for line in lines)
    done = draw(CallDetail(t.calls[1]), 56)
    assert len(done) == len(lines)  # the call's start and end take the same height


@pytest.mark.parametrize("width", [36, 44, 50, 64])
def test_narrow_detail_keeps_nan_inf_and_the_range_and_cuts_nothing(width: int) -> None:
    x = torch.randn(4, 10)
    x[0, 3] = float("nan")
    t = inspector.trace(nn.Linear(10, 10), x)
    lines = draw(CallDetail(t.calls[0]), width)
    header = next(line for line in lines if "shape" in line).split()
    assert header[0] == "shape" and header[-2:] == ["NaN", "Inf"] and "min" in header
    if width >= 44:
        assert "max" in header
    table = lines[lines.index(next(line for line in lines if "shape" in line)) :][:4]
    assert all(len(line) <= width and not line.endswith("…") for line in table)
    out = next(line for line in lines if line.startswith("out "))
    assert out.split()[-2:] == ["10", "0"]  # the NaN column, not cut off
