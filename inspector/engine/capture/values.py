"""Tensor values kept within a byte budget, and heat maps of 2-D slices of them.

The debugger shows a heat map of any recorded tensor while it is in the store: the root
call's inputs and every call's outputs, newest kept first. Small tensors (up to
`CLONE_LIMIT` bytes) are copied, so an in-place op later in the pass cannot change them;
larger ones are kept by reference with their version counter, and a tensor modified in place
since (a batch-norm output under `ReLU(inplace=True)`) is reported as overwritten rather than
shown with values it no longer had. Keeping a reference keeps the tensor alive: the budget
bounds what the inspector adds to the model's own memory.

The UI never gets a tensor: `heatmap()` returns a HeatMap of plain floats.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from inspector.engine.capture.describe import live_tensors
from inspector.engine.capture.stats import dispatches_to_python
from inspector.engine.capture.tensor_registry import tensor_version

DEFAULT_BUDGET = 64 * 2**20
CLONE_LIMIT = 2**20


@dataclass(frozen=True, slots=True)
class HeatMap:
    """A 2-D slice of a tensor, averaged down to at most the cells asked for.

    `index` picks the slice in the leading dimensions `leading` (shape[:-2], or () for a
    matrix); `size` is the slice's own (rows, columns) and `values` the averaged cells, row by
    row. `lo` and `hi` are the range of the cells.
    """

    label: str
    shape: tuple[int, ...]
    leading: tuple[int, ...]
    index: tuple[int, ...]
    size: tuple[int, int]
    values: tuple[tuple[float, ...], ...]
    lo: float
    hi: float
    note: str = ""

    @property
    def slices(self) -> int:
        """How many 2-D slices the tensor has."""
        return math.prod(self.leading) if self.leading else 1

    @property
    def flat_index(self) -> int:
        flat = 0
        for i, n in zip(self.index, self.leading, strict=True):
            flat = flat * n + i
        return flat


class ValueStore:
    """The most recent tensors of a pass, up to `budget` bytes. Thread-safe."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple[int, str, int], tuple[torch.Tensor, int | None]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, seq: int, kind: str, value: Any) -> None:
        """Keep the tensors of `value` (a call's inputs, kind "in", or outputs, "out"), as
        plain tensors: a subclass's `__torch_function__` sees none of these reads, and one
        that runs every op in Python (`__torch_dispatch__`) is not kept."""
        with torch._C.DisableTorchFunction(), torch.no_grad():
            for position, t in enumerate(live_tensors(value)):
                if t.layout != torch.strided or t.is_meta or t.is_nested or t.numel() == 0:
                    continue
                if type(t) is not torch.Tensor and dispatches_to_python(t):  # fake tensors too
                    continue
                size = t.numel() * t.element_size()
                if size > self.budget:
                    continue
                kept = t.detach().clone() if size <= CLONE_LIMIT else t.detach()
                version = None if size <= CLONE_LIMIT else tensor_version(t)
                with self._lock:
                    self._add((seq, kind, position), kept, version, size)

    def _add(self, key: tuple[int, str, int], t: torch.Tensor, version: int | None, size: int):
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[0].numel() * old[0].element_size()
        self._items[key] = (t, version)
        self._bytes += size
        while self._bytes > self.budget and self._items:
            _, (gone, _) = self._items.popitem(last=False)
            self._bytes -= gone.numel() * gone.element_size()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, seq: int, kind: str, position: int) -> torch.Tensor | str:
        """The kept tensor, or why there is none."""
        with self._lock:
            item = self._items.get((seq, kind, position))
        if item is None:
            return f"values not kept (the store keeps the last {self.budget // 2**20} MB)"
        t, version = item
        if version is not None and tensor_version(t) != version:
            return "overwritten in place by a later call: its values are gone"
        return t

    def heatmap(
        self,
        seq: int,
        kind: str,
        position: int,
        index: int = 0,
        *,
        rows: int = 16,
        cols: int = 48,
        label: str = "",
    ) -> HeatMap | str:
        """The heat map of slice number `index` (wrapping) of a kept tensor, or why not."""
        t = self.get(seq, kind, position)
        if isinstance(t, str):
            return t
        return heatmap(t, index, rows=rows, cols=cols, label=label)


def heatmap(
    t: torch.Tensor, index: int = 0, *, rows: int = 16, cols: int = 48, label: str = ""
) -> HeatMap | str:
    """Slice number `index` (counted over the leading dimensions, wrapping) of `t`, averaged
    down to at most rows x cols cells."""
    if t.is_complex():
        return "complex values: no heat map"
    shape = tuple(int(d) for d in t.shape)
    with torch.no_grad():
        x = t.detach()
        if x.dim() == 0:
            x = x.reshape(1, 1)
        elif x.dim() == 1:
            x = x.reshape(1, -1)
        leading = tuple(int(d) for d in x.shape[:-2])
        count = math.prod(leading) if leading else 1
        flat = index % count
        picked = []
        for n in reversed(leading):
            picked.append(flat % n)
            flat //= n
        pos = tuple(reversed(picked))
        plane = x[pos] if pos else x
        plane = plane.to(device="cpu", dtype=torch.float64)
        h, w = int(plane.shape[0]), int(plane.shape[1])
        out_h, out_w = min(rows, h), min(cols, w)
        f = min(rows / h, cols / w)
        if f < 1 and h * f >= 4 and w * f >= 4:  # keep the aspect unless a side would vanish
            out_h, out_w = max(1, round(h * f)), max(1, round(w * f))
        note = ""
        if (out_h, out_w) != (h, w):
            finite = torch.nan_to_num(plane, nan=0.0, posinf=0.0, neginf=0.0)
            plane = F.adaptive_avg_pool2d(finite[None, None], (out_h, out_w))[0, 0]
            note = f"{h}x{w} averaged to {out_h}x{out_w}"
        values = tuple(tuple(float(v) for v in row) for row in plane.tolist())
    flat_values = [v for row in values for v in row if math.isfinite(v)]
    lo = min(flat_values) if flat_values else 0.0
    hi = max(flat_values) if flat_values else 0.0
    return HeatMap(label, shape, leading, pos, (h, w), values, lo, hi, note)


def value_key(
    calls: Any, call: Any, info: Any, *, output_position: int | None
) -> tuple[int, str, int] | str:
    """Where the store keeps the values of tensor `info` seen at `call`: an output of `call`
    (`output_position`), else the output of the call that produced it, else (for the root's
    own inputs) the root's input. A reason string when no call made it."""
    from inspector.engine.records import tensors_in

    if output_position is not None:
        return (call.seq, "out", output_position)
    producer = info.producer
    if producer is not None and producer < len(calls):
        for position, out in enumerate(tensors_in(calls[producer].outputs)):
            if out is info or out == info:
                return (producer, "out", position)
    root = call
    while root.parent is not None:  # the model's own input, passed down unchanged
        root = calls[root.parent]
    for position, value in enumerate(t for v in root.inputs for t in tensors_in(v)):
        if value is info:
            return (root.seq, "in", position)
    return "made by the code between module calls: its values are not kept"
