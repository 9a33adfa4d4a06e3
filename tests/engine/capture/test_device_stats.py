"""Statistics of tensors on an accelerator: computed on the device, read on the host together.

No accelerator is needed here: the tests treat host memory as a device (HOST_DEVICES
emptied), so the very code a GPU runs computes every packet, and the host path is the
reference it must agree with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine import tensors_in
from inspector.engine.capture import device_stats as stats_module
from inspector.engine.capture.device_stats import DeviceBatch, device_packet, stats_from_packet
from inspector.engine.capture.stats import compute_stats
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.debugger import Debugger, Finished
from inspector.engine.control.stepper import Pause
from inspector.engine.records import Stats
from tests.helpers import square_loss
from tests.models import ZOO, Case


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


TENSORS: dict[str, Callable[[], torch.Tensor]] = {
    "normal": lambda: torch.randn(100_003, generator=_g()),
    "relu map": lambda: torch.randn(2, 16, 9, 9, generator=_g()).relu_(),
    "far from zero": lambda: 1e4 + torch.randn(10_000, generator=_g()) * 1e-3,
    "float64": lambda: torch.randn(5000, dtype=torch.float64, generator=_g()),
    "float16": lambda: torch.randn(3000, generator=_g()).half(),
    "bfloat16": lambda: torch.randn(3000, generator=_g()).bfloat16(),
    "integers": lambda: torch.arange(-50, 70),
    "bool mask": lambda: torch.arange(10) % 3 == 0,
    "one value": lambda: torch.tensor([2.5]),
    "constant": lambda: torch.full((64,), -1.25),
    "not contiguous": lambda: torch.randn(40, 30, generator=_g()).t(),
    "NaN and Inf": lambda: torch.tensor([1.0, math.nan, 0.0, math.inf, -2.0, -math.inf, 4.0]),
    "all NaN": lambda: torch.full((5,), math.nan),
}


def _read(t: torch.Tensor) -> Stats:
    return stats_from_packet(device_packet(t).cpu().numpy(), t.numel())


@pytest.mark.parametrize("name", list(TENSORS))
def test_a_packet_reads_as_the_host_statistics(name: str) -> None:
    t = TENSORS[name]()
    mine, host = _read(t), compute_stats(t)
    assert host is not None
    assert (mine.numel, mine.nan, mine.inf) == (host.numel, host.nan, host.inf)
    if host.nan + host.inf == host.numel:
        assert math.isnan(mine.mean) and math.isnan(mine.min)
        return
    assert (mine.min, mine.max) == (host.min, host.max)
    assert mine.zero_fraction == host.zero_fraction
    scale = max(1.0, abs(host.std))
    assert math.isclose(mine.mean, host.mean, rel_tol=1e-6, abs_tol=1e-7 * scale)
    assert math.isclose(mine.std, host.std, rel_tol=1e-5, abs_tol=1e-7 * scale)
    assert sum(mine.histogram) == mine.sampled > 0
    if host.finite:
        assert (mine.histogram, mine.sampled) == (host.histogram, host.sampled)


def test_one_transfer_for_many_packets() -> None:
    batch, seen = DeviceBatch(), []
    tensors = [torch.randn(n, generator=_g()) for n in (3, 5000, 70)]
    for t in tensors:
        n = t.numel()
        batch.add(device_packet(t), lambda values, n=n: seen.append(stats_from_packet(values, n)))
    assert len(batch) == 3 and seen == []
    batch.flush()
    assert len(batch) == 0
    assert [s.numel for s in seen] == [3, 5000, 70]
    assert [s.max for s in seen] == [float(t.max()) for t in tensors]


@pytest.fixture
def as_device(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Host tensors take the accelerator's path; yields the number of reads (transfers)."""
    monkeypatch.setattr(stats_module, "HOST_DEVICES", {"meta"})
    flushes = [0]
    real = DeviceBatch.flush

    def counted(self: DeviceBatch) -> None:
        if len(self):
            flushes[0] += 1
        real(self)

    monkeypatch.setattr(DeviceBatch, "flush", counted)
    yield flushes


def _infos(t: inspector.Trace) -> list[Any]:
    return [info for call in t.calls for v in (call.inputs, call.outputs) for info in tensors_in(v)]


CASES = list(ZOO.values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_trace_on_a_device_records_what_the_host_records(
    case: Case, as_device: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, args, kwargs = case.build()
    torch.manual_seed(3)
    deferred = inspector.trace(model, *args, **kwargs)
    reads = as_device[0]
    assert reads <= 1  # every statistic of the pass in one read, at its end
    monkeypatch.setattr(stats_module, "HOST_DEVICES", {"cpu", "meta"})
    model, args, kwargs = case.build()
    torch.manual_seed(3)
    host = inspector.trace(model, *args, **kwargs)
    assert as_device[0] == reads  # the host path reads nothing later
    pairs = list(zip(_infos(deferred), _infos(host), strict=True))
    assert sum(h.stats is not None for _, h in pairs) > 3 or case.name == "empty_batch"
    for mine, theirs in pairs:
        assert mine.shape == theirs.shape
        if theirs.stats is None:
            assert mine.stats is None
            continue
        assert mine.stats is not None
        assert (mine.stats.min, mine.stats.max) == (theirs.stats.min, theirs.stats.max)
        assert mine.stats.zero_fraction == theirs.stats.zero_fraction
        assert math.isclose(mine.stats.mean, theirs.stats.mean, rel_tol=1e-5, abs_tol=1e-6)
    assert [c.units for c in deferred.calls if c.units] == [c.units for c in host.calls if c.units]


def test_dead_and_saturated_units_are_read_later(as_device: list[int]) -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight[2:7] = 0
        model[0].bias[2:7] = -1.0  # units 2 to 6 never fire
        model[2].weight.mul_(40)
    t = inspector.trace(model, torch.randn(16, 6, generator=_g()))
    relu, sigmoid = t.find("1"), t.find("3")
    assert relu.units is not None and relu.units.dead == (2, 3, 4, 5, 6)
    assert sigmoid.units is not None and sigmoid.units.saturated > 0.3
    assert as_device[0] == 1


def test_a_pause_reads_what_waits_and_shows_it(as_device: list[int]) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    debugger = Debugger(model, torch.randn(3, 4, generator=_g()))
    first = debugger.start()
    assert isinstance(first, Pause) and first.phase == "enter"
    paused = debugger.next()  # over the root: nothing paused in between
    assert isinstance(paused, Pause) and paused.phase == "exit" and paused.call.path == ""
    assert as_device[0] == 2  # once at each pause, not once per call (4 calls)
    assert all(info.stats is not None for c in paused.calls for info in tensors_in(c.outputs))
    assert isinstance(debugger.cont(), Finished)
    final = debugger.trace.calls
    assert all(info.stats is not None for c in final for info in tensors_in(c.outputs))


def test_a_condition_on_statistics_reads_them_at_each_call(as_device: list[int]) -> None:
    class Blowup(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 0.0

    model = nn.Sequential(nn.Linear(4, 4), Blowup(), nn.Linear(4, 2))
    debugger = Debugger(
        model,
        torch.randn(2, 4, generator=_g()),
        breakpoints=[Breakpoint("*", condition="inf")],
        stop_at_start=False,
    )
    hit = debugger.start()
    assert isinstance(hit, Pause) and hit.call.path == "1" and hit.phase == "exit"
    assert hit.call.outputs.stats is not None and hit.call.outputs.stats.inf > 0
    debugger.quit()


GRAD_NAMES = ("mlp", "resnet_blocks", "tied_embedding", "reused_modules", "transformer_encoder",
              "lstm", "batchnorm_dropout_train")  # fmt: skip
GRAD_CASES = [ZOO[name] for name in GRAD_NAMES]


def _gradients(case: Case) -> inspector.Trace:
    model, args, kwargs = case.build()
    torch.manual_seed(5)
    return inspector.trace(model, *args, loss_fn=square_loss, backward=True, **kwargs)


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_gradients_on_a_device_are_read_with_the_rest(
    case: Case, as_device: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    deferred = _gradients(case)
    assert as_device[0] == 1  # forward and backward numbers in one read, after backward
    monkeypatch.setattr(stats_module, "HOST_DEVICES", {"cpu", "meta"})
    host = _gradients(case)
    graded = [(a, b) for a, b in zip(deferred.calls, host.calls, strict=True) if b.grad]
    assert graded
    for mine, theirs in graded:
        assert mine.grad is not None and theirs.grad is not None
        assert mine.grad.order == theirs.grad.order
        assert [n for n, _, _ in mine.grad.params] == [n for n, _, _ in theirs.grad.params]
        for (_, g1, w1), (_, g2, w2) in zip(mine.grad.params, theirs.grad.params, strict=True):
            assert math.isclose(g1, g2, rel_tol=1e-9) and math.isclose(w1, w2, rel_tol=1e-9)
        for s1, s2 in zip(mine.grad.outputs, theirs.grad.outputs, strict=True):
            assert (s1 is None) == (s2 is None)
            if s1 is not None and s2 is not None:
                assert (s1.min, s1.max, s1.nan) == (s2.min, s2.max, s2.nan)
                assert math.isclose(s1.mean, s2.mean, rel_tol=1e-5, abs_tol=1e-9)


def test_a_backward_pause_shows_the_gradient(as_device: list[int]) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(5, 4, generator=_g())
    debugger = Debugger(model, x, loss_fn=square_loss, backward=True, stop_at_start=False,
                        breakpoints=[Breakpoint("2", condition="grad-norm>0")])  # fmt: skip
    hit = debugger.start()
    assert isinstance(hit, Pause) and hit.phase == "backward" and hit.call.path == "2"
    grad = hit.call.grad
    assert grad is not None and grad.params  # read at the pause: the first one to arrive
    assert all(math.isfinite(g) and g > 0 for _, g, _ in grad.params)
    assert grad.outputs and grad.outputs[0] is not None and grad.outputs[0].numel == 5
    debugger.quit()
