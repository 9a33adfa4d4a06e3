"""Values kept for heat maps: within the budget, exact, and honest about in-place changes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inspector.engine.capture.recorder import Recorder
from inspector.engine.capture.values import CLONE_LIMIT, HeatMap, ValueStore, heatmap, value_key
from inspector.engine.trace import run_recorded


def test_slices_wrap_over_the_leading_dims_and_small_slices_are_exact() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    heat = heatmap(x, 4)  # (1, 1): the 5th slice
    assert isinstance(heat, HeatMap)
    assert heat.index == (1, 1) and heat.leading == (2, 3) and heat.slices == 6
    assert heat.flat_index == 4
    assert heat.values == tuple(tuple(map(float, row)) for row in x[1, 1].tolist())
    assert (heat.lo, heat.hi) == (float(x[1, 1].min()), float(x[1, 1].max()))
    wrapped = heatmap(x, 6 + 4)
    assert isinstance(wrapped, HeatMap) and wrapped.index == (1, 1)
    assert heatmap(x, -1).index == (1, 2)  # type: ignore[union-attr]


def test_large_slices_are_averaged_keeping_their_aspect() -> None:
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    heat = heatmap(x, rows=16, cols=48)
    assert isinstance(heat, HeatMap) and heat.size == (64, 64)
    assert (len(heat.values), len(heat.values[0])) == (16, 16)
    expected = F.adaptive_avg_pool2d(x[None, None].double(), (16, 16))[0, 0]
    assert torch.allclose(torch.tensor(heat.values, dtype=torch.float64), expected)
    wide = heatmap(torch.zeros(8, 784), rows=16, cols=48)
    assert isinstance(wide, HeatMap) and (len(wide.values), len(wide.values[0])) == (8, 48)
    line = heatmap(torch.ones(10))
    assert isinstance(line, HeatMap) and line.leading == () and line.size == (1, 10)


def test_store_keeps_outputs_and_root_inputs_within_the_budget() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    recorder = Recorder(stats=False)
    recorder.values = ValueStore(budget=10_000)
    x = torch.randn(8, 16)
    run = run_recorded(recorder, model, (x,), {})
    store = recorder.values
    assert store.bytes <= 10_000
    out = store.get(3, "out", 0)
    assert isinstance(out, torch.Tensor) and torch.equal(out, run.output)
    assert isinstance(store.get(0, "out", 0), torch.Tensor)  # the root's output, newest
    # the oldest went first: the root input (512 B) and fc1's output (1 KB) may stay, but
    # a tiny budget forgets them
    small = Recorder(stats=False)
    small.values = ValueStore(budget=200)
    run_recorded(small, model, (x,), {})
    assert "not kept" in str(small.values.get(0, "in", 0))
    key = value_key(recorder.calls, recorder.calls[3], recorder.calls[3].inputs[0],
                    output_position=None)  # fmt: skip
    assert key == (2, "out", 0)


def test_a_big_tensor_changed_in_place_is_reported_not_shown() -> None:
    side = int((CLONE_LIMIT // 4) ** 0.5) + 8  # over the clone limit: kept by reference
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(inplace=True))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    recorder = Recorder(stats=False)
    recorder.values = ValueStore()
    run_recorded(recorder, model, (torch.randn(1, 1, side, side),), {})
    assert "overwritten in place" in str(recorder.values.get(1, "out", 0))
    assert isinstance(recorder.values.get(2, "out", 0), torch.Tensor)
    small = Recorder(stats=False)
    small.values = ValueStore()
    run_recorded(small, model, (torch.randn(1, 1, 8, 8),), {})
    kept = small.values.get(1, "out", 0)
    assert isinstance(kept, torch.Tensor) and kept.min() < 0  # copied before the ReLU
