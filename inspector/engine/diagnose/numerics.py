"""Activation health in a recorded forward pass: scale across depth, saturation, dead units.

Scale is measured as the RMS of a layer's output against the RMS of its input, over the
layers that hold weights (normalization layers excluded: rescaling is their job). One layer
that multiplies the scale by 10 (or divides it) is reported where it happens; a drift of
1000x over the network, a little at each layer, is reported from the layer where it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.capture.gradients import rms
from inspector.engine.diagnose.anomalies import DEFAULTS, Thresholds
from inspector.engine.diagnose.context import warning_about
from inspector.engine.records import Call, Diagnosis, TensorInfo, tensors_in

if TYPE_CHECKING:
    from inspector.engine.records import Trace

INIT_FIXES = (
    "initialize for the activation that follows: nn.init.kaiming_normal_(w, nonlinearity="
    "'relu') for ReLU, nn.init.xavier_uniform_(w) for tanh/sigmoid (std about "
    "1/sqrt(fan_in)), or keep PyTorch's default init",
    "a normalization layer (nn.BatchNorm*, nn.LayerNorm) after it keeps the scale in check",
)


def weight_layers(trace: Trace) -> list[tuple[Call, TensorInfo, TensorInfo]]:
    """(call, input, output) of each leaf call with weights, a float input and finite stats."""
    has_children = {c.parent for c in trace.calls if c.parent is not None}
    layers = []
    for call in trace.calls:
        if call.seq in has_children or call.params == 0 or call.status != "ok":
            continue
        if "Norm" in call.type or call.path == "loss_fn":
            continue
        x = next((i for v in call.inputs for i in tensors_in(v)), None)
        y = next(tensors_in(call.outputs), None)
        if x is None or y is None or x.stats is None or y.stats is None:
            continue
        if not x.dtype.startswith(("float", "bfloat")) or not (x.stats.finite and y.stats.finite):
            continue
        if rms(x.stats) > 0 and rms(y.stats) > 0:  # all zeros: a constant-output finding
            layers.append((call, x, y))
    return layers


def activation_scale(trace: Trace, limits: Thresholds = DEFAULTS) -> list[Diagnosis]:
    """A layer that changes the activation RMS by `scale_step`, or a drift by `scale_depth`."""
    layers = weight_layers(trace)
    found: list[Diagnosis] = []
    for direction in (1, -1):
        jump = next(
            (
                (call, x, y)
                for call, x, y in layers
                if _factor(x, y) ** direction >= limits.scale_step
            ),
            None,
        )
        if jump is not None:
            found.append(_jump(*jump, direction, limits))
            continue
        drift = _drift(trace, layers, direction, limits)
        if drift is not None:
            found.append(drift)
    return found


def _factor(x: TensorInfo, y: TensorInfo) -> float:
    assert x.stats is not None and y.stats is not None
    return rms(y.stats) / rms(x.stats)


def _jump(call: Call, x: TensorInfo, y: TensorInfo, direction: int, limits: Thresholds):
    factor = _factor(x, y)
    verb = "multiplies" if direction > 0 else "divides"
    shown = factor if direction > 0 else 1 / factor
    assert x.stats is not None and y.stats is not None
    return warning_about(
        call,
        f"{call.name} {verb} the activation scale by {shown:.3g}",
        (
            f"RMS of its input {rms(x.stats):.3g} -> of its output {rms(y.stats):.3g} "
            f"(x{factor:.3g}; threshold scale_step: {limits.scale_step:g}x per layer)",
            f"{call.module_repr}: check how its weights were initialized",
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


def dead_units(trace: Trace, limits: Thresholds = DEFAULTS) -> list[Diagnosis]:
    """ReLU layers where a share of channels (features) is zero for every sample: named at
    the first such layer, with the later ones listed in its details."""
    hits = []
    for call in trace.calls:
        units = call.units
        out = next(tensors_in(call.outputs), None)
        if units is None or not units.dead or out is None or units.count == 0:
            continue
        share = len(units.dead) / units.count
        per_unit = out.numel // units.count
        if limits.dead_units <= share < 1.0 and per_unit >= limits.min_unit_samples:
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
