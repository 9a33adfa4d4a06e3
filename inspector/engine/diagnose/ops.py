"""Families explained from the failing op and its operands: view/reshape, matmul, broadcasting,
cat, dtype and device mismatches."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from inspector.engine.diagnose.context import (
    Context,
    Explanation,
    dims_product_text,
    label,
    product,
)
from inspector.engine.diagnose.dataflow_values import Tensor
from inspector.engine.diagnose.fixes import InputChange
from inspector.engine.diagnose.history import frame_operands, op_operands
from inspector.engine.diagnose.inputs import named_inputs
from inspector.engine.diagnose.verify import runs_through
from inspector.engine.records import first_tensor
from inspector.engine.records import format_shape as fmt

RESHAPE_OPS = {"view", "reshape", "_reshape_alias", "unflatten"}
MATMUL_OPS = {"matmul", "mm", "bmm", "__matmul__", "__rmatmul__", "einsum"}
ELEMENTWISE_OPS = {
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "sub_", "add_", "mul_", "div_",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__iadd__", "__imul__", "__isub__", "__itruediv__", "where", "maximum",
    "minimum", "pow", "__pow__", "masked_fill", "eq", "ne", "lt", "gt", "le", "ge",
}  # fmt: skip
CAT_OPS = {"cat", "concat", "concatenate", "stack", "hstack", "vstack"}


def _view_spec(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[int] | None:
    spec: Any = list(args[1:]) if len(args) > 1 else kwargs.get("size", kwargs.get("shape"))
    if spec is None:
        return None
    if len(spec) == 1 and isinstance(spec[0], (tuple, list, torch.Size)):
        spec = list(spec[0])
    try:
        return [int(s) for s in spec]
    except (TypeError, ValueError):
        return None


def explain_reshape(ctx: Context) -> Explanation | None:
    op = ctx.op
    if op is None or op.name not in RESHAPE_OPS or not op.args:
        return None
    x = op.args[0]
    spec = _view_spec(op.args, op.kwargs)
    if not isinstance(x, torch.Tensor) or spec is None:
        return None
    shape, numel = tuple(x.shape), x.numel()
    call = f"{op.name}({', '.join(str(s) for s in spec)})"
    known = product([s for s in spec if s != -1])
    fits = (numel % known == 0) if -1 in spec else (known == numel)
    if fits and not x.is_contiguous():
        return _non_contiguous(ctx, call, shape, spec)
    if fits:
        return None
    ex = Explanation(
        summary=f"{call} cannot reshape {fmt(shape)}: its {numel} values are not "
        + (
            f"a multiple of {known}"
            if -1 in spec
            else f"{known} = {dims_product_text(tuple(spec))}"
        ),
        code="view-size",
    )
    if x.dim() >= 2:
        n, per = shape[0], numel // shape[0]
        per_text = f"{per} = {dims_product_text(shape[1:])}" if x.dim() > 2 else str(per)
        ex.details.append(f"each of the {n} samples has {per_text} values")
        if x.dim() == len(spec) - 1 and list(spec[: x.dim() - 1]) == list(shape[:-1]):
            return _head_split(ex, shape, spec)
        if spec[0] not in (-1, n) and len(spec) >= 2 and known // spec[0] == per:
            ex.details.append(f"the batch size is written as {spec[0]}, but this batch has {n}")
            ex.fixes.append(
                f"use the real batch size: x.view(x.size(0), -1) (a last partial batch of {n})"
            )
            return ex
        if len(spec) == 2 and spec[0] == -1:
            ex.details.append(f"the view asks for {spec[1]} features per sample")
            ex.details.append(f"the input is {_origin_of_operand(ctx, x)}")
            producer_fix = _producer_fix(ctx, x, spec[1], per)
            if producer_fix:
                ex.fixes.extend(producer_fix)
            if x.dim() > 2:
                ex.fixes.append(
                    f"x = x.flatten(1) gives {fmt((n, per))}: {per} features per sample"
                )
            ex.fixes.append(f"or size the layer after this view for {per} features per sample")
            return ex
    ex.fixes.append(f"use x.flatten(1) for (N, features), or a size whose product is {numel}")
    return ex


def _head_split(ex: Explanation, shape: tuple[int, ...], spec: list[int]) -> Explanation:
    width, parts = shape[-1], spec[len(shape) - 1 :]
    ex.code = "head-split"
    ex.details.append(
        f"the last dim {width} is split into {' x '.join(str(p) for p in parts)} = {product(parts)}"
    )
    if len(parts) == 2:
        heads = parts[0]
        divisors = [d for d in range(1, width + 1) if width % d == 0 and d > 1][:6]
        ex.fixes.append(
            f"make the width divisible by the {heads} heads (e.g. "
            f"{heads * math.ceil(width / heads)} instead of {width}), or use a head count that "
            f"divides {width}: " + ", ".join(str(d) for d in divisors)
        )
    return ex


def _non_contiguous(
    ctx: Context, call: str, shape: tuple[int, ...], spec: list[int]
) -> Explanation:
    ex = Explanation(
        summary=f"{call} on a non-contiguous tensor {fmt(shape)}: view needs memory laid out "
        "in order",
        code="view-non-contiguous",
    )
    ex.details.append(
        "the tensor was transposed or permuted before, so its strides no longer allow a view"
    )
    args = ", ".join(str(s) for s in spec)
    ex.fixes.append(f"x.reshape({args}) (copies only when needed)")
    ex.fixes.append(f"or x.contiguous().view({args})")
    return ex


def _origin_of_operand(ctx: Context, x: torch.Tensor) -> str:
    """Where the op's operand came from: an input of the failing call, or one of its children."""
    info = _info_of(ctx, x)
    if info is None and ctx.lookup is not None:
        info = ctx.lookup(x)
    if info is not None:
        return ctx.origin(info)
    children = [c for c in ctx.trace.calls[ctx.call.seq + 1 :] if c.parent == ctx.call.seq]
    done = [c for c in children if c.status == "ok"]
    for child in reversed(done):  # a replayed op has new tensors: match the shape instead
        out = first_tensor(child.outputs)
        if out is not None and out.shape == tuple(x.shape):
            return f"the output of {label(child)}"
    if done:
        return f"made after {label(done[-1])} in {ctx.call.name}"
    return f"computed in {ctx.call.name}'s forward"


def _info_of(ctx: Context, x: torch.Tensor) -> Any:
    if ctx.lookup is not None:
        found = ctx.lookup(x)
        if found is not None:
            return found
    for info_value in ctx.call.inputs:
        info = first_tensor(info_value)
        if info is not None and info.shape == tuple(x.shape):
            return info
    return None


def _producer_fix(ctx: Context, x: torch.Tensor, wanted: int, actual: int) -> list[str]:
    """When a Linear made these features, say what it should produce instead."""
    from inspector.engine.diagnose.losses import shape_maker

    base = shape_maker(ctx.trace, _info_of(ctx, x))
    if base is None or base.type != "Linear" or wanted <= actual:
        return []
    side = math.isqrt(wanted)
    why = f" = {side}*{side}" if side * side == wanted else ""
    return [
        f"{base.name} ({base.module_repr}) makes {actual} features per sample; to produce "
        f"{wanted}{why} values set its out_features={wanted}: "
        f"{base.name} = nn.Linear({_in_features(base)}, {wanted})"
    ]


def _in_features(call: Any) -> str:
    info = first_tensor(call.inputs)
    return str(info.shape[-1]) if info is not None and info.ndim else "..."


def explain_matmul(ctx: Context) -> Explanation | None:
    op = ctx.op
    tensors = ctx.op_tensors()
    if op is None or op.name not in MATMUL_OPS - {"einsum"} or len(tensors) < 2:
        return None
    a, b = tensors[0], tensors[1]
    if a.dim() == 0 or b.dim() == 0:
        return None
    k1 = a.shape[-1]
    k2 = b.shape[-2] if b.dim() >= 2 else b.shape[0]
    sa, sb = fmt(tuple(a.shape)), fmt(tuple(b.shape))
    if k1 != k2:
        ex = Explanation(
            summary=f"{op.name}: {sa} @ {sb} needs the first operand's last dim ({k1}) to "
            f"equal the second's {'second-to-last' if b.dim() >= 2 else 'only'} dim ({k2})",
            code="matmul-inner",
        )
        undone = _transposed_wrong(ctx, a, tensors)
        if undone is not None:
            ex.details.append(undone[0])
            ex.fixes.append(undone[1])
        elif b.dim() >= 2 and b.shape[-1] == k1 and _matmul_shape(a.shape, _swap(b.shape)):
            bt = _swap(b.shape)
            ex.fixes.append(
                f"transpose the second operand: b.transpose(-2, -1) is {fmt(bt)}, and "
                f"{sa} @ {fmt(bt)} gives {fmt(_matmul_shape(a.shape, bt) or ())}"
            )
        elif a.dim() >= 2 and a.shape[-2] == k2:
            ex.fixes.append(f"transpose the first operand: a.transpose(-2, -1) has last dim {k2}")
        else:
            ex.fixes.append(
                f"project both operands to the same width ({k1} or {k2}) before the product"
            )
        return ex
    if op.name == "bmm" and a.shape[0] != b.shape[0]:
        return Explanation(
            summary=f"bmm: batch sizes differ: {sa} and {sb} ({a.shape[0]} vs {b.shape[0]})",
            fixes=["both operands of bmm need the same batch size in dim 0"],
            code="matmul-batch",
        )
    return None


def _swap(shape: Any) -> tuple[int, ...]:
    return (*tuple(shape)[:-2], shape[-1], shape[-2])


def _matmul_shape(a: Any, b: Any) -> tuple[int, ...] | None:
    """What a @ b gives, by torch's own rules on meta tensors; None when it fails."""
    try:
        made = torch.matmul(
            torch.empty(tuple(a), device="meta"), torch.empty(tuple(b), device="meta")
        )
    except RuntimeError:
        return None
    return tuple(made.shape)


def _transposed_wrong(ctx: Context, a: Any, tensors: list[Any]) -> tuple[str, str] | None:
    """The second operand made by a transpose of two dims that are not the last two (`k.
    transpose(1, 2)` on a 4-D k): swapping the last two instead makes the product work."""
    value = next((v for v in frame_operands(ctx)[1:] if isinstance(v, Tensor)), None)
    if value is None or value.step is None or not value.sources:
        return None
    source = value.sources[0]
    expr = value.step.expr
    if not source.known or len(source.shape) < 3 or ".transpose(" not in expr:
        return None
    if tuple(value.shape) != tuple(tensors[1].shape):
        return None
    fixed = _swap(source.shape)
    made = _matmul_shape(a.shape, fixed)
    if made is None:
        return None
    head = expr.split(".transpose(", 1)[0]
    return (
        f"`{expr}` swaps dims that are not the last two of {fmt(source.shape)}",
        f"{head}.transpose(-2, -1) instead gives {fmt(fixed)}, and "
        f"{fmt(tuple(a.shape))} @ {fmt(fixed)} gives {fmt(made)}",
    )


def broadcast_mismatch(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(dim counted from the left of the longer shape, size in a, size in b) that clash."""
    clashes = []
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    for d, (x, y) in enumerate(zip(pa, pb, strict=True)):
        if x != y and x != 1 and y != 1:
            clashes.append((d, x, y))
    return clashes


def explain_broadcast(ctx: Context) -> Explanation | None:
    op = ctx.op
    tensors = ctx.op_tensors()
    if op is not None and op.name in ELEMENTWISE_OPS and len(tensors) < 2:
        tensors = op_operands(ctx)  # an operand written as an expression (mask == 0)
    if op is None or op.name not in ELEMENTWISE_OPS or len(tensors) < 2:
        return None
    a, b = tuple(tensors[0].shape), tuple(tensors[1].shape)
    clashes = broadcast_mismatch(a, b)
    if not clashes:
        return None
    d, x, y = clashes[0]
    name = op.name.strip("_").removeprefix("r") if op.name.startswith("__") else op.name
    ex = Explanation(
        summary=f"{name}: {fmt(a)} and {fmt(b)} do not broadcast: dim {d} is {x} vs {y}",
        code="broadcast",
    )
    ex.details.append("shapes are aligned from the right; each dim must match or be 1")
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    placed = embed_dims(short, long_)
    if len(short) < len(long_) and placed is not None and tuple(long_[: len(short)]) != short:
        index = ", ".join(":" if p in placed else "None" for p in range(len(long_)))
        made = tuple(short[placed.index(p)] if p in placed else 1 for p in range(len(long_)))
        which = _operand_name(ctx, tensors, short)
        ex.details.append(
            f"{which} {fmt(short)} lines up with dims {', '.join(map(str, placed))} of "
            f"{fmt(long_)} (same sizes), not with the last {len(short)}"
        )
        ex.fixes.append(f"{which}[{index}] gives {fmt(made)}, which broadcasts to {fmt(long_)}")
    elif len(short) < len(long_) and tuple(long_[: len(short)]) == short:
        extra = len(long_) - len(short)
        view = ", ".join(str(s) for s in (*short, *([1] * extra)))
        ex.fixes.append(
            f"align the {len(short)}-D operand {fmt(short)} with the leading dims: "
            f".view({view}) (or [{', '.join([':'] * len(short) + ['None'] * extra)}])"
        )
    elif len(a) == len(b) == 4 and d == 1:
        ex.fixes.append(
            f"the branches have {x} and {y} channels: project the shortcut with "
            f"nn.Conv2d({min(x, y)}, {max(x, y)}, kernel_size=1)"
        )
    else:
        ex.fixes.append(f"make dim {d} agree ({x} vs {y}) or reshape one operand to size 1 there")
    return ex


def embed_dims(short: tuple[int, ...], long_: tuple[int, ...]) -> list[int] | None:
    """Where each dim of `short` goes among `long_`'s dims (in order, same size) so that,
    with 1s elsewhere, it broadcasts to `long_`: the placement that keeps the first dim
    first and the last dim last when it can; None when no placement does."""
    best: tuple[int, list[int]] | None = None
    for places in itertools.combinations(range(len(long_)), len(short)):
        if any(short[i] != long_[p] and short[i] != 1 for i, p in enumerate(places)):
            continue
        score = (places[0] == 0) + (places[-1] == len(long_) - 1) if places else 0
        if best is None or score > best[0]:
            best = (score, list(places))
    return best[1] if best is not None else None


def _operand_name(ctx: Context, tensors: list[torch.Tensor], shape: tuple[int, ...]) -> str:
    """The name the code gives the operand of this shape (`mask`), or `the operand`."""
    for value in frame_operands(ctx):
        if isinstance(value, Tensor) and value.shape == shape:
            for t in value.lineage():
                if t.name and t.shape == shape:
                    return t.name
    return "the operand"


def explain_dim_range(ctx: Context) -> Explanation | None:
    """An op asked for a dim its operand does not have (`softmax(x, dim=1)` on a 1-D x):
    most often the input came without its batch dim."""
    op = ctx.op
    tensors = ctx.op_tensors()
    if op is None or not tensors or "out of range" not in ctx.message:
        return None
    dim = op.kwargs.get("dim")
    if dim is None:
        dim = next((a for a in op.args[1:] if type(a) is int), None)
    x = tensors[0]
    rank = x.dim()
    if type(dim) is not int or -max(rank, 1) <= dim < max(rank, 1):
        return None
    shape = tuple(x.shape)
    ex = Explanation(
        summary=f"{op.name} over dim {dim} of {fmt(shape)}, which has {rank} dim"
        f"{'s' if rank != 1 else ''} ({-rank}..{rank - 1})",
        code="dim-range",
    )
    root = ctx.trace.calls[0] if ctx.trace.calls else None
    data = first_tensor(root.inputs) if root is not None and root.inputs else None
    names = named_inputs(ctx)
    given = next((n for n, i in names if i is data), None)
    one_sample = data is not None and data.ndim == 1 and given is not None and dim == rank
    batch_of_one = (
        InputChange(
            f"{given}.unsqueeze(0) gives {fmt((1, *data.shape))}: a batch of one",  # type: ignore[union-attr]
            str(given),
            lambda t: t.unsqueeze(0),
        )
        if one_sample
        else None
    )
    if batch_of_one is not None and runs_through(ctx, batch_of_one):
        # a single 1-D sample (a batch of features has 2 dims), and with the batch dim
        # added the whole pass runs: the input, not the dim, is what is off
        ex.details.append(
            f"the model's input {fmt(data.shape)} has no batch dim, so every tensor after it "  # type: ignore[union-attr]
            "has one dim fewer than the code counts on"
        )
        ex.change_input(batch_of_one.fix, batch_of_one.name, batch_of_one.change)
        ex.fixes.append(
            f"or count the dim from the end: dim={dim - (rank + 1)} works with and without a "
            "batch dim"
        )
    else:
        ex.fixes.append(f"use a dim {fmt(shape)} has: {-rank}..{rank - 1}")
    return ex


def explain_cat(ctx: Context) -> Explanation | None:
    op = ctx.op
    if op is None or op.name not in CAT_OPS or not op.args:
        return None
    seq = op.args[0]
    if not isinstance(seq, (list, tuple)):
        return None
    tensors = [t for t in seq if isinstance(t, torch.Tensor)]
    dim = op.args[1] if len(op.args) > 1 else op.kwargs.get("dim", 0)
    if len(tensors) < 2 or not isinstance(dim, int):
        return None
    shapes = [tuple(t.shape) for t in tensors]
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes):
        return Explanation(
            summary=f"{op.name} of tensors with different ranks: "
            + ", ".join(fmt(s) for s in shapes),
            fixes=["give every tensor the same number of dims"],
            code="cat-rank",
        )
    dim = dim % ndim if ndim else 0
    keep = [d for d in range(ndim) if d != dim or op.name == "stack"]
    bad = [d for d in keep if len({s[d] for s in shapes}) > 1]
    if not bad:
        return None
    sizes = ", ".join(f"dim {d}: " + " vs ".join(str(s[d]) for s in shapes) for d in bad)
    ex = Explanation(
        summary=f"{op.name} along dim {dim} needs the other dims equal: "
        + " and ".join(fmt(s) for s in shapes)
        + f" differ ({sizes})",
        code="cat-size",
    )
    if ndim == 4 and all(d >= 2 for d in bad):
        a, b = shapes[0][2:], shapes[1][2:]
        ex.details.append(
            f"a skip connection of {a[0]}x{a[1]} meets {b[0]}x{b[1]}: an odd size was "
            "rounded down by a pool and up by an upsample"
        )
        ex.fixes.append(
            f"resize before the cat: F.interpolate(x, size={tuple(b)}) on the {a[0]}x{a[1]} "
            f"map, or crop/pad the {b[0]}x{b[1]} skip to {a[0]}x{a[1]}"
        )
        ex.fixes.extend(_divisible_input_fix(ctx))
    else:
        ex.fixes.append("make the non-concatenated dims agree, or concatenate along another dim")
    return ex


def _divisible_input_fix(ctx: Context) -> list[str]:
    root = ctx.trace.calls[0] if ctx.trace.calls else None
    info = first_tensor(root.inputs) if root is not None else None
    if info is None or info.ndim != 4:
        return []
    size = info.shape[-1]
    smallest = min(
        (
            first_tensor(c.outputs).shape[-1]  # type: ignore[union-attr]
            for c in ctx.trace.calls
            if c.status == "ok"
            and first_tensor(c.outputs) is not None
            and first_tensor(c.outputs).ndim == 4  # type: ignore[union-attr]
        ),
        default=size,
    )
    depth = max(1, round(math.log2(max(size, 1) / max(smallest, 1))))
    step = 2**depth
    lower, upper = (size // step) * step, (size // step + 1) * step
    return [
        f"or feed an input size divisible by 2**{depth} = {step} (e.g. {lower} or {upper} "
        f"instead of {size})"
    ]


def explain_dtype_device(ctx: Context) -> Explanation | None:
    tensors = ctx.op_tensors() or [a for a in _params_and_args(ctx) if isinstance(a, torch.Tensor)]
    floats = [t for t in tensors if t.is_floating_point()]
    dtypes = {t.dtype for t in floats}
    devices = {t.device for t in tensors if t.device.type != "meta"}
    name = ctx.call.path or "the model"
    if len(devices) > 1:
        names = " and ".join(str(d) for d in sorted(devices, key=str))
        return Explanation(
            summary=f"{name}: tensors on different devices ({names})",
            fixes=[
                "move the inputs to the model's device: x = x.to(next(model.parameters()).device)"
            ],
            code="device-mismatch",
        )
    if len(dtypes) > 1:
        x = ctx.tensor_arg(0)
        in_dtype = str(x.dtype).removeprefix("torch.") if x is not None else "?"
        others = sorted(str(d).removeprefix("torch.") for d in dtypes if x is None or d != x.dtype)
        return Explanation(
            summary=f"{name}: dtypes differ: the input is {in_dtype} but the weights are "
            + ", ".join(others),
            fixes=[
                f"convert the input: x = x.to(torch.{others[0]})" if others else "use one dtype",
                f"or convert the model: model.to(torch.{in_dtype})",
            ],
            code="dtype-mismatch",
        )
    return None


def _params_and_args(ctx: Context) -> list[Any]:
    found = [a for a in ctx.args if isinstance(a, torch.Tensor)]
    module = ctx.module
    if isinstance(module, torch.nn.Module):
        found.extend(p for p in module.parameters(recurse=False))
    return found
