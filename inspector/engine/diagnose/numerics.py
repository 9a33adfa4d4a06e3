"""Activation health in a recorded forward pass: scale across depth, saturation, dead units.

Scale is measured as the RMS of a layer's output against the RMS of its input, over the
layers whose output is linear in their weights (Linear, convolutions): a recurrent layer or an
attention block bounds or mixes its output, an embedding has no activation input. One layer
that multiplies the scale by 10 (or divides it) is reported where it happens; a drift of
1000x over a run of layers, a little at each, is reported from the layer where it starts.

The premise is that the scale reaches the output: a normalization layer that runs after the
layer puts the scale back (a 0.02-std init in a narrow transformer shrinks every projection
by 10x, and each LayerNorm undoes it), and a small output layer is the recommended init for a
classifier or a regression head (near-uniform predictions at the first step). And the
warning blames the init, so the weights must be outside every common init for their fan-in
(under half of 0.02 and of PyTorch's default 1/sqrt(3 fan_in), or over twice Kaiming's
sqrt(2/fan_in) and 0.02): a 0.02-std pooler in a 32-wide model shrinks by about 10x by
arithmetic, and a default-init layer after a -100 bias grows by the bias, not the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from inspector.engine.capture.gradients import rms
from inspector.engine.diagnose.anomalies import (
    DEFAULTS,
    Thresholds,
    first_input,
    is_norm,
    module_of,
)
from inspector.engine.diagnose.context import producer_call, warning_about
from inspector.engine.records import Call, Diagnosis, TensorInfo, first_tensor, tensors_in

if TYPE_CHECKING:
    from inspector.engine.records import Trace

INIT_FIXES = (
    "initialize for the activation that follows: nn.init.kaiming_normal_(w, nonlinearity="
    "'relu') for ReLU, nn.init.xavier_uniform_(w) for tanh/sigmoid (std about "
    "1/sqrt(fan_in)), or keep PyTorch's default init",
    "a normalization layer (nn.BatchNorm*, nn.LayerNorm) after it keeps the scale in check",
)


AFFINE = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
AFFINE_TYPES = {
    "Linear", "LazyLinear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "LazyConv1d",
    "LazyConv2d", "LazyConv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
}  # fmt: skip


def is_affine(call: Call, modules: Sequence[Any] = ()) -> bool:
    """The call's output is linear in its weights: its scale follows from their init."""
    module = module_of(modules, call)
    if module is not None:
        return isinstance(module, AFFINE)
    return call.type in AFFINE_TYPES


def weight_layers(
    trace: Trace, modules: Sequence[Any] = ()
) -> list[tuple[Call, TensorInfo, TensorInfo]]:
    """(call, input, output) of each leaf Linear/conv call with a float input, finite stats."""
    has_children = {c.parent for c in trace.calls if c.parent is not None}
    layers = []
    for call in trace.calls:
        if call.seq in has_children or call.params == 0 or call.status != "ok":
            continue
        if call.path == "loss_fn" or not is_affine(call, modules):
            continue
        y = first_tensor(call.outputs)
        if y is None or y.stats is None:
            continue
        x = next((i for v in call.inputs for i in tensors_in(v)), None)
        if x is None or x.stats is None:
            continue
        if not x.dtype.startswith(("float", "bfloat")) or not (x.stats.finite and y.stats.finite):
            continue
        if rms(x.stats) > 0 and rms(y.stats) > 0:  # all zeros: a constant-output finding
            layers.append((call, x, y))
    return layers


def activation_scale(
    trace: Trace, limits: Thresholds = DEFAULTS, modules: Sequence[Any] = ()
) -> list[Diagnosis]:
    """A layer that changes the activation RMS by `scale_step`, or a drift by `scale_depth`,
    where no normalization layer runs after it to put the scale back."""
    layers = weight_layers(trace, modules)
    if not layers:
        return []
    has_children = {c.parent for c in trace.calls if c.parent is not None}
    norms = [
        c.seq for c in trace.calls
        if c.path != "loss_fn" and c.seq not in has_children and is_norm(c, modules)
    ]  # fmt: skip
    last_norm = max(norms, default=-1)
    output_layer = layers[-1][0].seq
    found: list[Diagnosis] = []
    weights: dict[int, str] = {}

    def blamed(call: Call) -> bool:
        """The weights made the change only when they are outside every common init (read
        once per layer, and only for a layer whose activations did change that much)."""
        if call.seq not in weights:
            weights[call.seq] = _weight_std(call, modules)[0]
        return weights[call.seq] != "common"

    for direction in (1, -1):
        # a small output layer is the usual init of a head: only growth counts there
        kept = [
            (c, x, y) for c, x, y in layers
            if c.seq > last_norm and (direction > 0 or c.seq != output_layer)
        ]  # fmt: skip
        jump = next(
            (
                (c, x, y) for c, x, y in kept
                if _factor(x, y) ** direction >= limits.scale_step and blamed(c)
            ),
            None,
        )  # fmt: skip
        if jump is not None:
            found.append(_jump(*jump, direction, limits, modules))
            continue
        drift = _drift(trace, kept, direction, limits)
        if drift is not None and any(blamed(c) for c, _, _ in kept):
            found.append(drift)
    return found


def _factor(x: TensorInfo, y: TensorInfo) -> float:
    assert x.stats is not None and y.stats is not None
    return rms(y.stats) / rms(x.stats)


def _weight_std(call: Call, modules: Sequence[Any]) -> tuple[str, str]:
    """("small" or "large", evidence) when the weights are under or over every common init
    for their fan-in, ("common", evidence) otherwise, ("unknown", "") without the module."""
    weight = getattr(module_of(modules, call), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2 or weight.is_meta:
        return "unknown", ""
    with torch.no_grad(), torch._C.DisableTorchFunction():
        std = float(weight.detach().float().std())
        fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0]
    default, kaiming = 1 / math.sqrt(3 * fan_in), math.sqrt(2 / fan_in)
    evidence = (
        f"its weights have std {std:.3g}; common inits for fan_in {fan_in}: 0.02, PyTorch's "
        f"default {default:.3g}, Kaiming {kaiming:.3g}"
    )
    if std < min(0.02, default) / 2:
        return "small", evidence
    return ("large" if std > 2 * max(0.02, kaiming) else "common"), evidence


def _jump(
    call: Call,
    x: TensorInfo,
    y: TensorInfo,
    direction: int,
    limits: Thresholds,
    modules: Sequence[Any] = (),
) -> Diagnosis:
    factor = _factor(x, y)
    verb = "multiplies" if direction > 0 else "divides"
    shown = factor if direction > 0 else 1 / factor
    assert x.stats is not None and y.stats is not None
    _, weights = _weight_std(call, modules)
    return warning_about(
        call,
        f"{call.name} {verb} the activation scale by {shown:.3g}",
        (
            f"RMS of its input {rms(x.stats):.3g} -> of its output {rms(y.stats):.3g} "
            f"(x{factor:.3g}; threshold scale_step: {limits.scale_step:g}x per layer)",
            f"no normalization layer runs after it: the layers after it and the output "
            f"get this scale; {call.module_repr}: check how its weights were initialized",
            *((weights,) if weights else ()),
        ),
        INIT_FIXES,
        "activation-scale",
    )


def _drift(
    trace: Trace,
    layers: list[tuple[Call, TensorInfo, TensorInfo]],
    direction: int,
    limits: Thresholds,
) -> Diagnosis | None:
    if len(layers) < 2:
        return None
    first_in, last_out = layers[0][1], layers[-1][2]
    assert first_in.stats is not None and last_out.stats is not None
    total = rms(last_out.stats) / rms(first_in.stats)
    if total**direction < limits.scale_depth:
        return None
    start = next((c for c, x, y in layers if _factor(x, y) ** direction > 1), layers[0][0])
    per_layer = total ** (1 / len(layers))
    verb = "grow" if direction > 0 else "shrink"
    shown = total if direction > 0 else 1 / total
    return warning_about(
        start,
        f"activations {verb} {shown:.3g}x over {len(layers)} layers, starting at {start.name}",
        (
            f"RMS of {layers[0][0].name}'s input {rms(first_in.stats):.3g} -> of "
            f"{layers[-1][0].name}'s output {rms(last_out.stats):.3g} (x{total:.3g}, about "
            f"x{per_layer:.3g} per layer; threshold scale_depth: {limits.scale_depth:g}x)",
            "no normalization layer runs after them to put the scale back",
        ),
        INIT_FIXES,
        "activation-scale",
    )


def saturation(trace: Trace, limits: Thresholds = DEFAULTS) -> list[Diagnosis]:
    """Sigmoid/tanh layers whose outputs sit at the bounds (no gradient passes there)."""
    found = []
    for call in trace.calls:
        units = call.units
        if units is None or units.saturated is None or units.saturated < limits.saturated:
            continue
        x = next((i for v in call.inputs for i in tensors_in(v)), None)
        details = [
            f"{100 * units.saturated:.0f}% of its outputs are within 1e-3 of the bounds "
            f"(threshold saturated: {100 * limits.saturated:.0f}%): their gradient is ~0",
        ]
        if x is not None and x.stats is not None:
            details.append(
                f"its input ranges over [{x.stats.min:.3g}, {x.stats.max:.3g}] "
                f"(std {x.stats.std:.3g}): the function is flat beyond about +-5"
            )
        found.append(
            warning_about(
                call,
                f"{call.name} ({call.type}) is saturated",
                tuple(details),
                (
                    "scale its input down: a smaller init or a normalization layer before it",
                    "for a classifier output, return logits and use nn.BCEWithLogitsLoss or "
                    "nn.CrossEntropyLoss, which stay accurate where a sigmoid saturates",
                ),
                "saturated",
            )
        )
    return found


def dead_units(
    trace: Trace, limits: Thresholds = DEFAULTS, modules: Sequence[Any] = ()
) -> list[Diagnosis]:
    """ReLU layers where a share of channels (features) is zero for every sample: named at
    the first such layer, with the later ones listed in its details."""
    hits = []
    for call in trace.calls:
        units = call.units
        if units is None or not units.dead or units.count == 0:
            continue
        out = first_tensor(call.outputs)
        if out is None:
            continue
        share = len(units.dead) / units.count
        per_unit = out.numel // units.count
        if not (limits.dead_units <= share < 1.0 and per_unit >= limits.min_unit_samples):
            continue
        # the premises read the live layer: only for a layer over the threshold
        if _uncalibrated_batchnorm(trace, call, modules) or _fresh_layer(trace, call, modules):
            continue
        hits.append((call, units, out, share))
    if not hits:
        return []
    call, units, out, share = hits[0]
    kind = "channels" if out.ndim >= 4 else "features"
    shown = ", ".join(str(i) for i in units.dead[:12])
    if len(units.dead) > 12:
        shown += f", ... ({len(units.dead) - 12} more)"
    details = [
        f"{kind} {shown} are zero for every sample and position "
        f"({100 * share:.0f}% >= threshold dead_units {100 * limits.dead_units:.0f}%)",
        "a dead unit passes nothing forward and gets no gradient back",
    ]
    if len(hits) > 1:
        later = ", ".join(f"{c.name} {100 * sh:.0f}%" for c, _, _, sh in hits[1:6])
        more = f" and {len(hits) - 6} more" if len(hits) > 6 else ""
        details.append(f"later layers with dead units: {later}{more}")
    return [
        warning_about(
            call,
            f"{len(units.dead)} of {units.count} {kind} of {call.name} are dead",
            tuple(details),
            (
                "check the layer before it: a large negative bias, or weights pushed negative "
                "by a high learning rate",
                "nn.LeakyReLU or nn.GELU keep a gradient for negative inputs",
            ),
            "dead-units",
        )
    ]


def _uncalibrated_batchnorm(trace: Trace, call: Call, modules: Sequence[Any]) -> bool:
    """The activation is fed by a BatchNorm in eval mode whose running statistics were never
    updated: it does not normalize yet (a fresh model put in eval), so a channel whose conv
    output is negative everywhere stays so. Training mode, or one pass of data, changes it."""
    source = producer_call(trace, first_input(call))
    bn = module_of(modules, source) if source is not None else None
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.training:
        return False
    tracked = getattr(bn, "num_batches_tracked", None)
    return bn.track_running_stats and tracked is not None and int(tracked) == 0


def _fresh_layer(trace: Trace, call: Call, modules: Sequence[Any]) -> bool:
    """The activation is fed by a Linear/conv whose weights and biases are still those of a
    common init: its dead units come from an input scale smaller than the init's biases (a
    deep default-init ReLU stack), not from a bias or weights that training pushed negative,
    which is what the warning's advice is about."""
    source = producer_call(trace, first_input(call))
    if source is None or not is_affine(source, modules):
        return False
    if _weight_std(source, modules)[0] != "common":
        return False
    bias = getattr(module_of(modules, source), "bias", None)
    if not isinstance(bias, torch.Tensor):
        return True
    weight = module_of(modules, source).weight
    with torch.no_grad(), torch._C.DisableTorchFunction():
        fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0]
        largest = float(bias.detach().abs().max()) if bias.numel() else 0.0
    return largest <= 1.01 / math.sqrt(fan_in)
