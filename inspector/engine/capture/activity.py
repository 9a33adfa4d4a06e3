"""Per-unit facts of activation outputs: dead ReLU units and saturated sigmoid/tanh outputs.

Measured where a call of such a module ends, on the live output. Dead units are looked for
only when the output is mostly zeros (a healthy ReLU layer has about half), so a healthy
network pays nothing; saturation is one pass over the outputs of sigmoid and tanh layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from inspector.engine.records import TensorInfo, Units, Value

# The one table of activation families: dead units are looked for in the ReLU family,
# saturation in the bounded ones (the breakpoint conditions and the findings read these).
RELU_FAMILY = frozenset({"ReLU", "ReLU6", "Threshold"})
DEAD_TYPES = RELU_FAMILY
BOUNDS = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0)}
SATURATION_MARGIN = 1e-3
DEAD_GATE = 0.6  # zero fraction from which dead units are counted
UNIT_TYPES = frozenset(DEAD_TYPES) | frozenset(BOUNDS)  # the modules whose units are looked at


def unit_axis(ndim: int) -> int | None:
    """Channels of (N, C, H, W) and (N, C, D, H, W), features of (N, F) and (N, T, F)."""
    if ndim == 2 or ndim >= 4:
        return 1
    if ndim == 3:
        return 2
    return None


def describe_units(module: Any, output: Any, described: Value) -> Units | None:
    """Dead or saturated units of `output` when `module` is an activation layer."""
    name = type(module).__name__
    if name not in DEAD_TYPES and name not in BOUNDS:
        return None
    if not isinstance(output, torch.Tensor) or not isinstance(described, TensorInfo):
        return None
    stats = described.stats
    axis = unit_axis(output.dim())
    if stats is None or axis is None or not output.is_floating_point() or output.numel() == 0:
        return None
    count = output.shape[axis]
    if name in DEAD_TYPES and stats.zero_fraction < DEAD_GATE:
        return Units(axis, count)  # a healthy layer: nothing to read
    if name not in DEAD_TYPES:
        low, high = BOUNDS[name]
        middle, half = (low + high) / 2, (high - low) / 2
        # The exact range says when no value comes near a bound: nothing to read then (the
        # slack covers the rounding of `x - middle` in the tensor's precision).
        reach = max(stats.max - middle, middle - stats.min)
        if reach < (half - SATURATION_MARGIN) * (1 - 1e-6):
            return Units(axis, count, saturated=0.0)
    with torch.no_grad():
        x = output.detach()
        if name in DEAD_TYPES:
            others = tuple(d for d in range(x.dim()) if d != axis)
            hi = torch.amax(x, dim=others)
            if stats.min >= 0:  # no negative value: a unit whose maximum is 0 is all zeros
                dead = torch.nonzero(hi == 0).flatten().tolist()
            else:
                lo = torch.amin(x, dim=others)
                dead = torch.nonzero((hi == 0) & (lo == 0)).flatten().tolist()
            return Units(axis, count, dead=tuple(int(i) for i in dead))
        near = torch.count_nonzero((x - middle).abs() >= half - SATURATION_MARGIN)
        return Units(axis, count, saturated=int(near) / x.numel())


Finish = Callable[[Any, Value], Units]


def device_units(module: Any, output: Any) -> tuple[torch.Tensor, Finish] | None:
    """`describe_units` for an output on an accelerator, without waiting for it: the per-unit
    numbers as a tensor on the device, and how to read them on the host together with the
    output's statistics (the dead units are listed under the same zero-fraction gate)."""
    name = type(module).__name__
    if name not in DEAD_TYPES and name not in BOUNDS:
        return None
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        return None
    axis = unit_axis(output.dim())
    if axis is None or output.numel() == 0:
        return None
    count, numel = output.shape[axis], output.numel()
    with torch.no_grad():
        x = output.detach()
        if name in DEAD_TYPES:
            others = tuple(d for d in range(x.dim()) if d != axis)
            dead = (torch.amax(x, dim=others) == 0) & (torch.amin(x, dim=others) == 0)

            def dead_units(values: Any, described: Value) -> Units:
                stats = described.stats if isinstance(described, TensorInfo) else None
                if stats is None or stats.zero_fraction < DEAD_GATE:
                    return Units(axis, count)
                return Units(axis, count, dead=tuple(int(i) for i in np.flatnonzero(values)))

            return dead.to(x.dtype), dead_units
        low, high = BOUNDS[name]
        middle, half = (low + high) / 2, (high - low) / 2
        near = torch.count_nonzero((x - middle).abs() >= half - SATURATION_MARGIN)

        def saturation(values: Any, described: Value) -> Units:
            return Units(axis, count, saturated=float(values[0]) / numel)

        return near.reshape(1).to(torch.float32), saturation
