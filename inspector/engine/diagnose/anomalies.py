"""Numerical anomalies in a recorded pass: where a NaN or Inf starts, dead and constant layers.

A NaN made in one layer flows through every layer after it; the finding names only where it
starts: the innermost call whose inputs were finite and whose output is not, or, when that
call's own code (not a child) made it, the line before the first child that received it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from inspector.engine.capture.activity import RELU_FAMILY
from inspector.engine.diagnose.context import producer_call, warning_about
from inspector.engine.records import (
    Call,
    Diagnosis,
    Stats,
    TensorInfo,
    first_tensor,
    format_shape,
    tensors_in,
)

if TYPE_CHECKING:
    from inspector.engine.records import Trace

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
              nn.LocalResponseNorm)  # fmt: skip


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


def module_of(modules: Sequence[Any], call: Call) -> Any:
    """The live module of a recorded call, or None (collected, or a record read back)."""
    ref = modules[call.seq] if call.seq < len(modules) else None
    return ref() if ref is not None else None


def is_norm(call: Call, modules: Sequence[Any] = ()) -> bool:
    """A normalization layer: rescaling its input is its job (LlamaRMSNorm and kin by name)."""
    module = module_of(modules, call)
    if isinstance(module, NORM_TYPES):
        return True
    return "Norm" in call.type and call.type not in ("Normal", "Normalize")


def first_input(call: Call) -> TensorInfo | None:
    return next((i for v in call.inputs for i in tensors_in(v)), None)


def float_inputs(call: Call) -> list[TensorInfo]:
    return [
        i for v in call.inputs for i in tensors_in(v)
        if i.dtype.startswith(("float", "bfloat")) and i.stats is not None
    ]  # fmt: skip


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
        if call.status != "ok" or _bad(list(tensors_in(call.outputs))) is None:
            continue  # the outputs first: nearly every call's are finite
        if _finite([i for v in call.inputs for i in tensors_in(v)]):
            candidates.append(call)
    if not candidates or _absorbed_inf(trace, candidates):
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


def _absorbed_inf(trace: Trace, candidates: list[Call]) -> bool:
    """Only +-Inf, never NaN, and the model's output (and loss) are finite: an additive -inf
    mask that a softmax turns into zeros, by design."""
    for call in candidates:
        if any(i.stats.nan for i in tensors_in(call.outputs) if i.stats is not None):
            return False
    ends = [c for c in trace.calls if c.parent is None and c.status == "ok"]
    outs = [i for c in ends for i in tensors_in(c.outputs)]
    return bool(outs) and _finite(outs) and all(i.stats is not None for i in outs)


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


def dead_and_constant(
    trace: Trace, limits: Thresholds = DEFAULTS, modules: Sequence[Any] = ()
) -> list[Diagnosis]:
    """ReLU-family outputs that are zero everywhere although their input varies, and outputs
    with a single value that information lost upstream made (not a zero init by design)."""
    found = []
    for call in trace.calls:
        out = first_tensor(call.outputs) if call.status == "ok" else None
        if out is None or out.stats is None or out.numel < limits.min_dead_numel:
            continue
        s = out.stats
        if call.type in RELU_FAMILY and s.zero_fraction >= limits.dead_fraction:
            x = first_input(call)
            # a ReLU fed one value everywhere (a zero-init branch) kills nothing itself
            if x is None or x.stats is None or x.stats.std > 0:
                found.append(_dead(call, out, s, limits))
        elif s.std == 0 and s.finite and call.type not in RELU_FAMILY:
            dead = _constant_since(trace, call)
            if dead is None:
                continue
            found.append(
                warning_about(
                    call,
                    f"{call.name} outputs the same value ({s.min:.4g}) everywhere",
                    (
                        f"all {out.numel} values of {describe_stats(out)} are equal",
                        f"its input is constant since {dead.name} ({dead.type}), which "
                        "outputs zero for every sample",
                    ),
                    (
                        "a constant layer passes no information: fix the dead layer "
                        f"{dead.name} first (a large negative bias before it?)",
                    ),
                    "constant-output",
                )
            )
    return found


def _constant_since(trace: Trace, call: Call) -> Call | None:
    """The dead ReLU-family call whose all-zero output made `call`'s input constant, or None.

    A constant output is by design when the call's own parameters make it (a zero-init layer:
    LoRA's B, a zero conv, a BatchNorm with gamma 0, ReZero: its input still varies), when it
    has no varying input at all (a position-bias table, a zero query embedding), or when the
    program fed it a constant of its own making (a zero initial state).
    """
    seen = 0
    while seen < 64:
        seen += 1
        inputs = float_inputs(call)
        if not inputs or any(i.stats is not None and i.stats.std > 0 for i in inputs):
            return None
        source = producer_call(trace, inputs[0])
        if source is None or source.seq == call.seq:
            return None
        if source.type in RELU_FAMILY:
            x = first_input(source)
            varied = x is not None and x.stats is not None and x.stats.std > 0
            return source if varied else None
        call = source
    return None


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
