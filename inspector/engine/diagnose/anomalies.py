"""Numerical anomalies in a recorded pass: where a NaN or Inf starts, dead and constant layers.

A NaN made in one layer flows through every layer after it; the finding names only where it
starts: the innermost call whose inputs were finite and whose output is not, or, when that
call's own code (not a child) made it, the line before the first child that received it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspector.engine.capture.activity import RELU_FAMILY
from inspector.engine.diagnose.context import warning_about
from inspector.engine.records import Call, Diagnosis, Stats, TensorInfo, format_shape, tensors_in

if TYPE_CHECKING:
    from inspector.engine.records import Trace


@dataclass(frozen=True)
class Thresholds:
    """When a finding fires; each finding says which threshold it used."""

    dead_fraction: float = 1.0  # zeros over the whole output of a ReLU-family module
    min_dead_numel: int = 64  # smaller outputs (a few units) are not called dead
    dead_units: float = 0.25  # fraction of channels/features zero for every sample
    min_unit_samples: int = 8  # values seen per unit before it can be called dead
    saturated: float = 0.5  # fraction of sigmoid/tanh outputs within 1e-3 of the bounds
    scale_step: float = 10.0  # activation RMS growth (or shrink) by one layer
    scale_depth: float = 1e3  # activation RMS growth (or shrink) over the whole network
    grad_vanish: float = 1e-4  # earliest layer's |grad|/|weight| against the last layer's
    grad_explode: float = 100.0  # |grad|/|weight| of one layer (one step at lr 0.01 >= 1x)


DEFAULTS = Thresholds()


def describe_stats(info: TensorInfo) -> str:
    """`(8, 4) with 3 NaN, 0 Inf; finite values in [-1.2, 3.4], mean 0.5`."""
    s = info.stats
    text = format_shape(info.shape)
    if s is None:
        return text
    if not s.finite:
        text += f" has {s.nan} NaN and {s.inf} Inf of {s.numel};"
        if s.nan + s.inf == s.numel:
            return text + " no finite value"
        text += " finite values"
    return text + f" in [{s.min:.3g}, {s.max:.3g}], mean {s.mean:.3g}"


def _finite(infos: list[TensorInfo]) -> bool:
    return all(i.stats is None or i.stats.finite for i in infos)


def _bad(infos: list[TensorInfo]) -> TensorInfo | None:
    return next((i for i in infos if i.stats is not None and not i.stats.finite), None)


def nan_origin(trace: Trace) -> list[Diagnosis]:
    """The innermost call where NaN/Inf first appears (one finding, not one per layer)."""
    candidates = []
    for call in trace.calls:
        ins = [i for v in call.inputs for i in tensors_in(v)]
        outs = list(tensors_in(call.outputs)) if call.status == "ok" else []
        if _finite(ins) and _bad(outs) is not None:
            candidates.append(call)
    if not candidates:
        return []
    children: dict[int, list[Call]] = {}
    for call in trace.calls:
        if call.parent is not None:
            children.setdefault(call.parent, []).append(call)
    chosen = {c.seq for c in candidates}
    origin = next(
        c for c in candidates if not any(k.seq in chosen for k in children.get(c.seq, []))
    )
    bad = _bad(list(tensors_in(origin.outputs)))
    assert bad is not None and bad.stats is not None
    kind = "NaN" if bad.stats.nan else "Inf"
    line = origin.call_site
    where = f"{origin.name} ({origin.type})"
    details = [f"its inputs are finite; its output {describe_stats(bad)}"]
    receiving = next(
        (k for k in children.get(origin.seq, [])
         if not _finite([i for v in k.inputs for i in tensors_in(v)])),
        None,
    )  # fmt: skip
    if receiving is not None:  # made by the call's own code, before this child
        line = receiving.call_site or line
        where = f"the code of {origin.name} before {receiving.name}"
        details.append(f"{receiving.name} already receives {kind}")
        source = _last_finite_before(trace, receiving)
        if source is not None:
            details.append(
                f"the last finite tensor before it, {describe_stats(source)}, {_cause(source)}"
            )
    else:
        first_in = next((i for v in origin.inputs for i in tensors_in(v)), None)
        if first_in is not None and first_in.stats is not None:
            details.append(f"its input {describe_stats(first_in)}, {_cause(first_in)}")
    return [
        Diagnosis(
            kind="warning",
            module=origin.path,
            module_type=origin.type,
            call=origin.seq,
            summary=f"{kind} first appears in {where}",
            line=line,
            details=tuple(details),
            fixes=(
                "check the inputs of the op there: log/sqrt need positive values, a division "
                "needs a non-zero divisor (add an epsilon), exp overflows above 88 in float32",
                "Breakpoint(condition='nan') stops the debugger right there",
            ),
            code="nan-origin",
        )
    ]


def _last_finite_before(trace: Trace, receiving: Call) -> TensorInfo | None:
    for call in reversed(trace.calls[: receiving.seq]):
        if call.parent == receiving.parent and call.status == "ok":
            outs = list(tensors_in(call.outputs))
            if outs and _finite(outs):
                return outs[0]
    return None


def _cause(info: TensorInfo) -> str:
    s = info.stats
    if s is None:
        return "no statistics"
    facts = []
    if s.min < 0:
        facts.append(f"negative values (min {s.min:.3g}): NaN if a log or sqrt was taken")
    if s.zero_fraction > 0:
        facts.append(f"zeros ({100 * s.zero_fraction:.0f}%): Inf/NaN if it was a divisor")
    if s.max > 88:
        facts.append(f"values up to {s.max:.3g}: exp overflows float32 above 88")
    if not facts:
        return "is ordinary (positive, no zeros): the op or its other operand made it"
    return "holds " + "; ".join(facts)


def dead_and_constant(trace: Trace, limits: Thresholds = DEFAULTS) -> list[Diagnosis]:
    """ReLU-family outputs that are zero everywhere, and outputs with a single value."""
    found = []
    for call in trace.calls:
        out = next(tensors_in(call.outputs), None) if call.status == "ok" else None
        if out is None or out.stats is None or out.numel < limits.min_dead_numel:
            continue
        s = out.stats
        if call.type in RELU_FAMILY and s.zero_fraction >= limits.dead_fraction:
            found.append(_dead(call, out, s, limits))
        elif s.std == 0 and s.finite and call.type not in RELU_FAMILY:
            found.append(
                warning_about(
                    call,
                    f"{call.name} outputs the same value ({s.min:.4g}) everywhere",
                    (f"all {out.numel} values of {describe_stats(out)} are equal",),
                    (
                        "a constant layer passes no information: check its weights (all zero?) "
                        "and its input",
                    ),
                    "constant-output",
                )
            )
    return found


def _dead(call: Call, out: TensorInfo, s: Stats, limits: Thresholds) -> Diagnosis:
    return warning_about(
        call,
        f"{call.name} is dead: all {out.numel} outputs are zero for the whole batch",
        (
            f"zero fraction {100 * s.zero_fraction:.0f}% >= the dead_fraction threshold "
            f"{100 * limits.dead_fraction:.0f}%",
            "nothing flows through it, and no gradient flows back",
        ),
        (
            "lower the learning rate or check the layer before it (a large negative bias?)",
            "nn.LeakyReLU or nn.GELU keep a gradient for negative inputs",
        ),
        "dead-units",
    )
