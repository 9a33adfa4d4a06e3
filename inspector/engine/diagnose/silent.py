"""Silent bugs: the pass runs, but the shapes say it computes something else.

Each rule needs positive evidence, not a guess from one shape: a reshape that changed the
batch size (and was never undone), a regression loss whose operands broadcast, a sequence
layer whose batch dim disappears downstream, a Linear applied to a conv feature map. Head
splits, patch embeddings and pixel shuffles keep the batch and stay quiet; so do an index
that selects (a seq-first `output[-1]`), one sequence fed seq-first with a batch of 1, and a
Linear over the last dim of pairwise or channels-last features.

These are the error-class warnings: the program computes something other than what it
means. `diagnose()` may name one of them as the diagnosis when nothing failed; the numeric
findings (scale, dead units, gradients) never are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inspector.engine.diagnose.context import dims_product_text, product, warning_about
from inspector.engine.diagnose.losses import find_fold
from inspector.engine.diagnose.ops import broadcast_mismatch
from inspector.engine.diagnose.silent_inputs import mask_mismatch
from inspector.engine.diagnose.silent_shapes import heads_floor, position_by_batch
from inspector.engine.records import Call, Diagnosis, TensorInfo, first_tensor, tensors_in
from inspector.engine.records import format_shape as fmt

if TYPE_CHECKING:
    from inspector.engine.records import Trace

REGRESSION_LOSSES = {
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
}
SEQUENCE_TYPES = {
    "LSTM",
    "GRU",
    "RNN",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "Transformer",
}
# layers that make a channels-first (N, C, H, W) map, and shape-keeping ops it passes through
MAP_MAKERS = ("Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "AdaptiveAvgPool2d",
              "AdaptiveMaxPool2d", "ConvTranspose2d", "LazyConv2d")  # fmt: skip
MAP_KEEPERS = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "ELU", "Dropout", "Dropout2d",
               "Identity", "Hardswish", "Sigmoid", "Tanh")  # fmt: skip


def silent_findings(trace: Trace, modules: Sequence[Any] = ()) -> list[Diagnosis]:
    """Warnings for a pass that completed; `modules` are weak references by call seq."""
    found: list[Diagnosis] = []
    found.extend(batch_changed(trace))
    found.extend(loss_broadcasts(trace))
    found.extend(sequence_batch_first(trace, modules))
    found.extend(linear_on_feature_map(trace))
    found.extend(mask_mismatch(trace, modules))
    found.extend(position_by_batch(trace, modules))
    found.extend(heads_floor(trace, modules))
    return found


def _root(trace: Trace) -> Call | None:
    return next((c for c in trace.calls if c.parent is None and c.path != "loss_fn"), None)


def _batch(trace: Trace) -> int | None:
    root = _root(trace)
    if root is None or not root.inputs or not isinstance(root.inputs[0], TensorInfo):
        return None
    x = root.inputs[0]
    return x.shape[0] if x.ndim >= 2 else None


def batch_changed(trace: Trace) -> list[Diagnosis]:
    root, batch = _root(trace), _batch(trace)
    if root is None or batch is None:
        return []
    out = next((t for t in tensors_in(root.outputs) if t.ndim >= 1), None)
    if out is None or out.shape[0] == batch:
        return []
    fold = find_fold(trace, batch)
    if fold is None:
        return []
    consumer, before, line = fold
    after = first_tensor(consumer.inputs)
    if after is None or after.numel != product(before):
        return []  # an index or a slice selected rows (seq-first `output[-1]`): no reshape
    where = trace.calls[consumer.parent].path if consumer.parent is not None else ""
    per = product(before[1:])
    return [
        Diagnosis(
            kind="warning",
            module=where,
            module_type=trace.calls[consumer.parent].type if consumer.parent is not None else "",
            call=consumer.parent,
            summary=f"the output has a batch of {out.shape[0]} but the input {batch}: a reshape "
            "moved values into the batch dim",
            line=line or consumer.call_site,
            details=(
                f"{fmt(before)} became {fmt(after.shape) if after else '?'} before "
                f"{consumer.name}, so each sample was split into "
                f"{out.shape[0] // batch if batch else '?'} rows",
                "every later layer and the loss then treat those rows as separate samples",
            ),
            fixes=(
                f"keep the batch: x.view(x.size(0), -1) or x.flatten(1) gives ({batch}, {per}) "
                f"= {dims_product_text(before[1:])} features per sample",
                f"and size {consumer.name} for {per} input features",
                *(
                    (
                        f"or, for one prediction per position, restore the batch after the "
                        f"per-row layers: out.view({batch}, {before[1]}, -1)",
                    )
                    if len(before) == 3
                    else ()
                ),
            ),
            code="batch-changed",
        )
    ]


def loss_broadcasts(trace: Trace) -> list[Diagnosis]:
    found = []
    for call in trace.calls:
        if call.type not in REGRESSION_LOSSES or call.status != "ok" or len(call.inputs) < 2:
            continue
        a, b = first_tensor(call.inputs[0]), first_tensor(call.inputs[1])
        if a is None or b is None or a.shape == b.shape or broadcast_mismatch(a.shape, b.shape):
            continue
        n = max(len(a.shape), len(b.shape))
        pa, pb = (1,) * (n - a.ndim) + a.shape, (1,) * (n - b.ndim) + b.shape
        full = tuple(max(x, y) for x, y in zip(pa, pb, strict=True))
        pairs, wanted = product(full), max(a.numel, b.numel)
        if pairs == wanted:
            continue
        fixes = []
        if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
            fixes = [
                f"target.unsqueeze(-1) gives {fmt((*b.shape, 1))}",
                f"or output.squeeze(-1) gives {fmt(a.shape[:-1])}",
            ]
        else:
            fixes = [f"reshape the target to the output's shape {fmt(a.shape)}"]
        found.append(
            warning_about(
                call,
                f"{call.type} compares {fmt(a.shape)} with {fmt(b.shape)}: they "
                f"broadcast to {fmt(full)}, {pairs} pairs instead of {wanted}",
                (
                    "every output is compared with every target; the loss is wrong and "
                    "so are the gradients",
                ),
                tuple(fixes),
                "loss-broadcast",
            )
        )
    return found


def _batch_first(call: Call, modules: Sequence[Any]) -> bool:
    module = modules[call.seq]() if call.seq < len(modules) else None
    if module is None:
        return "batch_first=True" in call.module_repr
    # Transformer layers keep the flag on their attention submodule only.
    for sub in module.modules():
        if hasattr(sub, "batch_first"):
            return bool(sub.batch_first)
    return False


def sequence_batch_first(trace: Trace, modules: Sequence[Any] = ()) -> list[Diagnosis]:
    root = _root(trace)
    out = next((t for t in tensors_in(root.outputs) if t.ndim >= 1), None) if root else None
    if out is None:
        return []
    found = []
    for call in trace.calls:
        if call.type not in SEQUENCE_TYPES or _batch_first(call, modules):
            continue
        x = first_tensor(call.inputs[0]) if call.inputs else None
        if x is None or x.ndim != 3 or x.shape[0] == x.shape[1]:
            continue
        steps, batch = x.shape[0], x.shape[1]
        if batch == 1:
            continue  # one sequence of `steps` steps: a length-1 sequence is not the reading
        # read as (seq, batch, feature), the batch dim vanished while dim 0 reached the output
        if out.shape[0] != steps or (out.ndim >= 2 and batch in out.shape[1:2]):
            continue
        found.append(
            warning_about(
                call,
                f"{call.path} reads {fmt(x.shape)} as (seq={steps}, batch={batch}, feature) "
                "because batch_first=False, but the model treats dim 0 as the batch",
                (
                    f"the output {fmt(out.shape)} keeps dim 0 ({steps}) and drops dim 1 "
                    f"({batch}): the batch of {steps} is processed as {steps} time steps",
                ),
                (
                    f"construct it with batch_first=True for (batch={steps}, seq={batch}, "
                    "feature) data",
                    "or pass x.transpose(0, 1) and index the last step with out[-1]",
                ),
                "batch-first",
            )
        )
    return found


def linear_on_feature_map(trace: Trace) -> list[Diagnosis]:
    found = []
    for call in trace.calls:
        if call.type != "Linear" or call.status != "ok" or not call.inputs:
            continue
        x = first_tensor(call.inputs[0])
        if x is None or x.ndim != 4 or not _from_feature_map(trace, call, x):
            continue
        per = product(x.shape[1:])
        out = first_tensor(call.outputs)
        found.append(
            warning_about(
                call,
                f"{call.path} is applied to the last axis (width {x.shape[-1]}) of the "
                f"feature map {fmt(x.shape)}, not to its {per} features",
                (
                    f"nn.Linear mixes only the last dim; the output "
                    f"{fmt(out.shape) if out else ''} keeps channels and rows apart",
                ),
                (
                    f"flatten first: x.flatten(1) gives ({x.shape[0]}, {per}) = "
                    f"{dims_product_text(x.shape[1:])}, then nn.Linear({per}, "
                    f"{out.shape[-1] if out else '...'})",
                ),
                "linear-on-map",
            )
        )
    return found


def _from_feature_map(trace: Trace, call: Call, x: TensorInfo) -> bool:
    """x is a channels-first map as a conv/pool/BN2d made it: same shape, not permuted, only
    shape-keeping ops in between (pairwise (B, N, N, F) features and a conv output permuted to
    channels-last are Linear inputs by design)."""
    consumer, info = call, x
    for _ in range(16):
        seq = info.producer if info.producer is not None else info.view_of
        source: Call | None
        if seq is not None:
            source = trace.calls[seq]
            out = first_tensor(source.outputs)
            if out is None or out.shape != x.shape or not info.contiguous:
                return False
        else:
            # made by the caller's own code (F.relu(conv(x))): the call just before
            source = next(
                (p for p in reversed(trace.calls[: consumer.seq])
                 if p.parent == consumer.parent and p.status == "ok"),
                None,
            )  # fmt: skip
            out = first_tensor(source.outputs) if source is not None else None
            if source is None or out is None or out.shape != x.shape:
                return False
        if source.type in MAP_MAKERS:
            return True
        if source.type not in MAP_KEEPERS or not source.inputs:
            return False
        nxt = first_tensor(source.inputs[0])
        if nxt is None:
            return False
        consumer, info = source, nxt
    return False
