"""Gradient findings over a recorded backward pass: where NaN/Inf gradients start, vanishing
and exploding gradients.

A call's backward receives the gradient of its output and produces the gradients of its
inputs and parameters. A NaN made by a call's backward shows as a finite output gradient and
a non-finite gradient on an input (recorded on the call that produced that input) or on a
parameter: that call is named, once, the innermost such call first reached by backward.

Vanishing and exploding are measured on |grad| / |weight| of the layers with weights (the
relative step an optimizer would take), comparing the layers nearest the input with the one
nearest the loss; embeddings and normalization layers are left out (an embedding gets
gradient only in the rows the batch used).

Vanishing means the gradient fades with depth, so its premise is a trend toward the input:
every layer from the input up to the named one is under the threshold, and the update falls
by 10x or more along them. Layers that read the same tensor count by the best of them: an
attention's query and key get little gradient at init (near-uniform attention) while the
value beside them, reading the same input, shows the gradient that reached that depth. A
uniformly small update under a small gain (LayerScale at 1e-5) is a design, not a fade.

Exploding leaves out layers that feed a normalization layer: their output's scale is divided
out, so |grad| / |weight| grows as 1/|weight|^2 when the weights are small (a 0.02-std conv
before a BatchNorm) and says how small the weights are, not that the gradient explodes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from inspector.engine.diagnose.anomalies import (
    DEFAULTS,
    Thresholds,
    first_input,
    is_norm,
    module_of,
)
from inspector.engine.diagnose.context import producer_call, warning_about
from inspector.engine.records import (
    Call,
    Diagnosis,
    SourceLine,
    Stats,
    TensorInfo,
    exception_message,
    tensors_in,
)

if TYPE_CHECKING:
    from inspector.engine.records import Trace

SKIPPED_TYPES = ("Embedding", "EmbeddingBag")


def gradient_findings(
    trace: Trace, limits: Thresholds = DEFAULTS, modules: Sequence[Any] = ()
) -> list[Diagnosis]:
    if not any(c.grad is not None for c in trace.calls):
        return []
    found = nan_gradient(trace)
    found.extend(vanishing_exploding(trace, limits, modules))
    return found


def input_gradient(trace: Trace, info: TensorInfo) -> Stats | None:
    """The gradient recorded for an input tensor, on the output of the call that made it."""
    if info.producer is None or info.producer >= len(trace.calls):
        return None
    producer = trace.calls[info.producer]
    if producer.grad is None:
        return None
    for position, out in enumerate(tensors_in(producer.outputs)):
        if out is info or out == info:
            outs = producer.grad.outputs
            return outs[position] if position < len(outs) else None
    return None


def nan_gradient(trace: Trace) -> list[Diagnosis]:
    """The innermost call, first in backward order, whose backward made NaN/Inf."""
    candidates: list[tuple[Call, str]] = []
    for call in trace.calls:
        g = call.grad
        if g is None or not all(s is None or s.finite for s in g.outputs):
            continue
        bad_param = next((name for name, norm, _ in g.params if not math.isfinite(norm)), None)
        if bad_param is not None:
            candidates.append((call, f"the gradient of its parameter {bad_param!r}"))
            continue
        for v in call.inputs:
            for info in tensors_in(v):
                grad = input_gradient(trace, info)
                if grad is not None and not grad.finite:
                    candidates.append((call, f"the gradient of its input {_shape(info)}"))
                    break
            else:
                continue
            break
    if not candidates:
        return _first_bad_output(trace)
    seqs = {c.seq for c, _ in candidates}
    innermost = [
        (c, what) for c, what in candidates if not any(_inside(trace, k, c.seq) for k in seqs)
    ]
    call, what = min(innermost, key=lambda item: (item[0].grad.order, -item[0].depth))  # type: ignore[union-attr]
    out = call.grad.output if call.grad is not None else None
    kind = "NaN or Inf"
    return [
        warning_about(
            call,
            f"{kind} gradients start in the backward of {call.name} ({call.type})",
            (
                "the gradient reaching its output is finite"
                + (f" (in [{out.min:.3g}, {out.max:.3g}])" if out is not None else ""),
                f"{what} is not: its backward made it",
            ),
            (
                "a sqrt or pow at 0, a log of 0, or a division by a tiny value has an "
                "infinite derivative there: add an epsilon (sqrt(x + 1e-12), log(x + 1e-8))",
                "torch.autograd.set_detect_anomaly(True) names the exact op in its traceback",
            ),
            "nan-gradient",
        )
    ]


def _first_bad_output(trace: Trace) -> list[Diagnosis]:
    """No call to blame inside: name the first output whose gradient came back non-finite."""
    bad = [
        c for c in trace.calls
        if c.grad is not None and not all(s is None or s.finite for s in c.grad.outputs)
    ]  # fmt: skip
    if not bad:
        return []
    call = min(bad, key=lambda c: (c.grad.order, -c.depth))  # type: ignore[union-attr]
    return [
        warning_about(
            call,
            f"NaN or Inf gradients first reach the output of {call.name} ({call.type})",
            (
                "they were made by the code that used this output (not a recorded module): "
                "look at the line after this call",
            ),
            ("torch.autograd.set_detect_anomaly(True) names the exact op in its traceback",),
            "nan-gradient",
        )
    ]


def _inside(trace: Trace, seq: int, ancestor: int) -> bool:
    parent = trace.calls[seq].parent
    while parent is not None:
        if parent == ancestor:
            return True
        parent = trace.calls[parent].parent
    return False


def _shape(info: TensorInfo) -> str:
    return "(" + ", ".join(str(d) for d in info.shape) + ")"


def _relative_layers(trace: Trace, modules: Sequence[Any] = ()) -> list[tuple[Call, float]]:
    has_children = {c.parent for c in trace.calls if c.parent is not None}
    layers = []
    for call in trace.calls:
        if call.grad is None or call.index != 0 or call.seq in has_children:
            continue
        if call.path == "loss_fn" or is_norm(call, modules) or _is_embedding(call, modules):
            continue
        rel = call.grad.relative("weight")
        if rel is not None and math.isfinite(rel):
            layers.append((call, rel))
    return layers


def _is_embedding(call: Call, modules: Sequence[Any]) -> bool:
    module = module_of(modules, call)
    if module is not None and isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return True
    return call.type in SKIPPED_TYPES or call.type.endswith("Embedding")


def _feeds_norm(trace: Trace, modules: Sequence[Any]) -> set[int]:
    """Calls whose output a normalization layer reads directly."""
    fed = set()
    for call in trace.calls:
        if call.path != "loss_fn" and is_norm(call, modules):
            source = producer_call(trace, first_input(call))
            if source is not None:
                fed.add(source.seq)
    return fed


def vanishing_exploding(
    trace: Trace, limits: Thresholds = DEFAULTS, modules: Sequence[Any] = ()
) -> list[Diagnosis]:
    layers = _relative_layers(trace, modules)
    found = []
    before_norm = _feeds_norm(trace, modules)
    big = [(c, r) for c, r in layers if r >= limits.grad_explode and c.seq not in before_norm]
    if big:
        call, rel = min(big, key=lambda item: item[0].grad.order)  # type: ignore[union-attr]
        found.append(
            warning_about(
                call,
                f"exploding gradients: |grad| / |weight| of {call.name} is {rel:.3g}",
                (
                    f"threshold grad_explode: {limits.grad_explode:g}; one SGD step at lr "
                    f"0.01 would move these weights {0.01 * rel:.3g}x their own size",
                    f"{len(big)} of {len(layers)} layers with weights are above it "
                    "(layers that feed a normalization layer not counted)",
                ),
                (
                    "clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)",
                    "lower the learning rate, and check the activation scale before the loss "
                    "(huge logits) and the weight init",
                ),
                "exploding-gradient",
            )
        )
    vanishing = _vanishing(layers, limits)
    if vanishing is not None:
        found.append(vanishing)
    return found


def _depth_groups(layers: list[tuple[Call, float]]) -> list[tuple[Call, float, int]]:
    """(best call, its ratio, calls in the group) per tensor read, in forward order."""
    groups: dict[object, list[tuple[Call, float]]] = {}
    for call, rel in layers:
        x = first_input(call)
        key: object = (x.producer, x.view_of, x.shape, x.stats) if x is not None else call.seq
        groups.setdefault(key, []).append((call, rel))
    ordered = sorted(groups.values(), key=lambda members: members[0][0].seq)
    return [(*max(members, key=lambda m: m[1]), len(members)) for members in ordered]


def _vanishing(layers: list[tuple[Call, float]], limits: Thresholds) -> Diagnosis | None:
    if len(layers) < 3:
        return None
    last_call, last = layers[-1]
    if last <= 0:
        return None
    groups = _depth_groups(layers[:-1])
    prefix = []
    for group in groups:
        if group[1] >= limits.grad_vanish * last:
            break
        prefix.append(group)
    if len(prefix) < 2:
        return None  # one small layer is not a fade with depth
    (first_call, first, _), (call, rel, _) = prefix[0], prefix[-1]
    if first * 10 > rel:
        return None  # uniformly small (a small gain by design), not fading toward the input
    count = sum(n for _, _, n in prefix)
    per_layer = (first / rel) ** (1 / (len(prefix) - 1)) if first > 0 else 0.0
    return warning_about(
        call,
        f"vanishing gradients: from {call.name} down to the input, {count} layers get "
        f"under {limits.grad_vanish:g} of the update of {last_call.name}",
        (
            f"|grad| / |weight|: {last:.3g} at {last_call.name} (nearest the loss), "
            f"{rel:.3g} at {call.name}, {first:.3g} at {first_call.name} (x{per_layer:.3g} "
            f"per layer toward the input; threshold grad_vanish: {limits.grad_vanish:g})",
            f"every layer from the input up to {call.name} is under the threshold, and the "
            f"update keeps falling toward the input",
        ),
        (
            "use ReLU/GELU instead of sigmoid/tanh between layers, residual "
            "connections, or normalization layers",
            "initialize with nn.init.kaiming_normal_ (ReLU) or nn.init.xavier_uniform_ (tanh)",
        ),
        "vanishing-gradient",
    )


_SAVED_OUTPUT = re.compile(r"output (\d+) of (\w+?)(?:Backward\d*)?, is at version (\d+)")


def backward_failure(trace: Trace, error: BaseException, line: SourceLine | None) -> Diagnosis:
    """The backward pass raised: say so (the forward ran fine), and for the common case, a
    tensor autograd saved being changed in place, which op saved it and how to fix it."""
    message = exception_message(error)
    first = message.split(". ", 1)[0].split("\n", 1)[0]
    exception = f"{type(error).__name__}: {message}"
    module, module_type, call_seq = "", "", None
    details = ["the forward pass ran to the end; autograd failed while computing gradients"]
    fixes = ["torch.autograd.set_detect_anomaly(True) names the forward line of the failing op"]
    saved = _SAVED_OUTPUT.search(message)
    if "modified by an inplace operation" in message:
        op = saved.group(2) if saved else "an op"
        version = saved.group(3) if saved else "?"
        details.append(
            f"autograd saved the output of {op} to compute its gradient, and {version} "
            f"in-place change(s) came after it (x.add_(), x += ..., x[...] = ..., "
            f"ReLU(inplace=True))"
        )
        culprit = next((c for c in trace.calls if c.type.lower() == op.lower()), None)
        if culprit is not None:
            module, module_type, call_seq = culprit.path, culprit.type, culprit.seq
            details.append(f"{culprit.name} ({culprit.type}) made that output")
        fixes.insert(
            0,
            f"make the change after {op} out of place (y = y + 1 instead of y.add_(1) or "
            "y += 1; nn.ReLU(inplace=False)), or clone first: y = y.clone()",
        )
    elif "does not require grad" in message:
        fixes.insert(0, "something was computed under torch.no_grad() or .detach()ed on the way "
                        "to the loss, or every parameter has requires_grad=False")  # fmt: skip
    return Diagnosis(
        kind="error",
        module=module,
        module_type=module_type,
        call=call_seq,
        summary=f"the backward pass failed: {first}",
        line=line,
        details=tuple(details),
        fixes=tuple(fixes),
        code="backward-failed",
        exception=exception,
    )
