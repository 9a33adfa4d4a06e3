"""Statistics of tensors on an accelerator: computed where the tensor lives, read later.

A transfer to the host waits for every queued kernel, so the numbers of many tensors are
gathered into one packet per tensor on its device and brought to the host together: one
transfer per device when a `DeviceBatch` is flushed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from inspector.engine.capture.devices import wide_float
from inspector.engine.capture.stats import foreign, unexpanded
from inspector.engine.capture.stats_sample import histogram, sample
from inspector.engine.records import Stats

# Device types whose statistics are computed where the tensor lives and brought to the host
# together, later (a transfer waits for every queued kernel: one per module would make the
# accelerator idle while Python runs the next module's hooks). Everything but host memory.
HOST_DEVICES = {"cpu", "meta"}
PACKET_HEAD = 7  # finite count, sum, centred sum of squares, min, max, zeros, NaN count

_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def on_device(t: torch.Tensor) -> bool:
    """Whether `t`'s statistics are computed on its device and read later (`DeviceBatch`)."""
    # `device.type` builds a string: 20 us right after a large op, once or twice per output.
    # The flag is read from the tensor itself where no subclass may report another device.
    if type(t) is torch.Tensor and t.is_cpu:
        return "cpu" not in HOST_DEVICES
    return t.device.type not in HOST_DEVICES


def device_packet(t: torch.Tensor) -> torch.Tensor:
    """The numbers behind `t`'s Stats as one 1-D tensor on `t`'s device, with no transfer
    and no wait: [finite count, sum, centred sum of squares, min, max, zeros, NaN count] over
    the finite values, then the strided sample. `stats_from_packet` reads it on the host."""
    if foreign(t):
        with _NO_TORCH_FUNCTION():
            return _device_packet(t.detach())
    return _device_packet(t)


def _device_packet(t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x, repeats = unexpanded(t.detach().resolve_neg())
        wide = wide_float(x.device)
        if not x.is_floating_point():
            x = x.to(wide)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        finite = torch.isfinite(x)
        count = finite.sum(dtype=acc)
        kept = torch.where(finite, x, 0).to(acc)
        total = kept.sum()
        mean = total / count.clamp(min=1)
        centred = torch.where(finite, kept - mean, 0).flatten()
        squares = torch.dot(centred, centred)  # two passes: no cancellation to guard against
        lo = torch.where(finite, x, math.inf).amin().to(acc)
        hi = torch.where(finite, x, -math.inf).amax().to(acc)
        zeros = (x == 0).sum(dtype=acc)
        nan = torch.isnan(x).sum(dtype=acc)
        head = torch.stack([count, total, squares, lo, hi, zeros, nan]).to(wide)
        if repeats > 1:  # a broadcast view: its counts and sums are the part's, repeated
            scale = [repeats, repeats, repeats, 1, 1, repeats, repeats]
            head = head * torch.tensor(scale, dtype=wide, device=head.device)
        return torch.cat([head, sample(x).to(wide)])


def stats_from_packet(values: np.ndarray, numel: int) -> Stats:
    """The Stats of a tensor of `numel` values from its `device_packet`, read on the host."""
    count, total, squares, lo, hi, zeros, nan = (float(v) for v in values[:PACKET_HEAD])
    n_finite, n_nan = int(count), int(nan)
    inf = numel - n_finite - n_nan
    if n_finite == 0:
        return Stats(numel=numel, mean=math.nan, std=math.nan, min=math.nan, max=math.nan,
                     nan=n_nan, inf=inf)  # fmt: skip
    sampled = values[PACKET_HEAD:].astype(np.float64)
    if n_finite < numel:
        sampled = sampled[np.isfinite(sampled)]
    std = math.sqrt(squares / (n_finite - 1)) if n_finite > 1 else 0.0
    return Stats(
        numel=numel,
        mean=total / n_finite,
        std=std,
        min=lo,
        max=hi,
        nan=n_nan,
        inf=inf,
        zero_fraction=zeros / numel,
        histogram=histogram(sampled, lo, hi),
        histogram_range=(lo, hi),
        sampled=int(sampled.size),
    )


class DeviceBatch:
    """Numbers computed on accelerators, brought to the host together: one transfer per
    device when `flush()` runs, then each item's callback gets its values."""

    def __init__(self) -> None:
        self._items: list[tuple[torch.Tensor, Callable[[np.ndarray], None]]] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, packet: torch.Tensor, done: Callable[[np.ndarray], None]) -> None:
        self._items.append((packet, done))

    def clear(self) -> None:
        self._items.clear()

    def flush(self) -> None:
        items, self._items = self._items, []
        by_device: dict[torch.device, list[tuple[torch.Tensor, Callable[[np.ndarray], None]]]]
        by_device = {}  # packets of one device share its float type (float32 on mps)
        for packet, done in items:
            by_device.setdefault(packet.device, []).append((packet, done))
        for group in by_device.values():
            host = torch.cat([packet for packet, _ in group]).cpu().numpy()  # the one wait
            start = 0
            for packet, done in group:
                end = start + packet.numel()
                done(host[start:end])
                start = end
