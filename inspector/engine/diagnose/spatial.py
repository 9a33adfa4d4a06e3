"""Feature maps that shrank too far: a kernel larger than its input, a pool with no output.

Follows the spatial size through every recorded conv and pool of the pass ("16 -> conv1 12 ->
pool 6 -> conv2 2"), says where the map became too small, and computes the smallest input
size for which every stage still has an output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from inspector.engine.diagnose.context import Context, Explanation
from inspector.engine.records import Call, first_tensor

_SPATIAL = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


@dataclass
class Stage:
    """One size-changing step: out = floor((in + 2p - d(k-1) - 1) / s) + 1."""

    name: str
    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil: bool = False

    def out(self, size: int) -> int:
        span = size + 2 * self.padding - self.dilation * (self.kernel - 1) - 1
        if span < 0:
            return 0
        q = -(-span // self.stride) if self.ceil else span // self.stride
        return q + 1


def _first(v: Any) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def stage_of(name: str, module: nn.Module) -> Stage | None:
    if not isinstance(module, _SPATIAL):
        return None
    kernel = _first(module.kernel_size)
    stride = _first(module.stride if module.stride is not None else module.kernel_size)
    padding = module.padding
    if isinstance(padding, str):  # "same" / "valid"
        padding = 0 if padding == "valid" else (kernel - 1) // 2
    dilation = _first(getattr(module, "dilation", 1))
    ceil = bool(getattr(module, "ceil_mode", False))
    return Stage(name, kernel, stride, _first(padding), dilation, ceil)


def explain_spatial(ctx: Context) -> Explanation | None:
    x = ctx.tensor_arg(0)
    failing = stage_of(ctx.call.path, ctx.module) if isinstance(ctx.module, nn.Module) else None
    if x is None or failing is None or x.dim() < 3:
        return None
    size = int(x.shape[-1])
    if failing.out(size) >= 1 and size + 2 * failing.padding >= failing.kernel:
        return None
    chain, start = _chain(ctx)
    kind = "kernel" if isinstance(ctx.module, nn.modules.conv._ConvNd) else "window"
    ex = Explanation(
        summary=f"{ctx.call.path}'s {failing.kernel}x{failing.kernel} {kind} does not fit its "
        f"{size}x{size} input (padding {failing.padding})",
        code="map-too-small",
    )
    if chain:
        path = " -> ".join(f"{name} {out}" for name, out in chain)
        ex.details.append(f"the map shrinks {start} -> {path} -> {ctx.call.path} ✗")
    stages = [s for s in (_stage_for(ctx, c) for c in _spatial_calls(ctx)) if s is not None]
    stages.append(failing)
    smallest = smallest_input(stages)
    if smallest is not None and start is not None and smallest > start:
        ex.fixes.append(
            f"use an input of at least {smallest}x{smallest} (it is {start}x{start}), "
            "or remove a pooling/stride-2 stage"
        )
    ex.fixes.append(
        f"or shrink {ctx.call.path}: kernel_size <= {size + 2 * failing.padding} or more padding"
    )
    return ex


def _spatial_calls(ctx: Context) -> list[Call]:
    return [
        c
        for c in ctx.trace.calls[: ctx.call.seq]
        if c.status == "ok" and isinstance(ctx.live_module(c.seq), _SPATIAL)
    ]


def _stage_for(ctx: Context, call: Call) -> Stage | None:
    module = ctx.live_module(call.seq)
    return stage_of(call.path, module) if module is not None else None


def _chain(ctx: Context) -> tuple[list[tuple[str, int]], int | None]:
    calls = _spatial_calls(ctx)
    root = first_tensor(ctx.trace.calls[0].inputs) if ctx.trace.calls else None
    start = root.shape[-1] if root is not None and root.ndim >= 3 else None
    chain = []
    for c in calls:
        out = first_tensor(c.outputs)
        if out is not None and out.ndim >= 3:
            chain.append((c.path, out.shape[-1]))
    return chain, start


def smallest_input(stages: list[Stage], limit: int = 4096) -> int | None:
    """The smallest square input size for which every stage yields at least one position."""
    for size in range(1, limit + 1):
        current = size
        for stage in stages:
            if current + 2 * stage.padding < stage.dilation * (stage.kernel - 1) + 1:
                current = 0
                break
            current = stage.out(current)
            if current < 1:
                break
        if current >= 1:
            return size
    return None
