"""Checks that the real kernels make and the fake ones skip.

A fake tensor's kernel computes the output's shape and dtype only. It does not read the ids
an embedding looks up or the classes a loss is given, and several kernels (linear, mm, conv,
binary cross-entropy) do not compare their operands' dtypes. The real kernel raises on each
of those, so the dry run asks the same questions before the op and raises what the real op
raises, with the same type; the explanation families then read the operands as they would
after a real failure. Ids are real in a dry run where the user passed them (integer tensors
stay real, see inspector.engine.dryrun.fake), so the check costs a min and a max over them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from inspector.engine.dryrun.fake import is_fake

Real = Callable[[], AbstractContextManager[Any]]

_LOOKUPS = {"embedding": "num_embeddings", "embedding_bag": "num_embeddings"}
_CLASS_LOSSES = ("cross_entropy", "nll_loss")
_FLOAT_TARGET_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
_SAME_DTYPE = {
    "linear": "mat1 and mat2 must have the same dtype, but got {} and {}",
    "matmul": "expected m1 and m2 to have the same dtype, but got: {} != {}",
    "mm": "expected m1 and m2 to have the same dtype, but got: {} != {}",
    "bmm": "expected scalar type {} but found {}",
    "addmm": "mat1 and mat2 must have the same dtype, but got {} and {}",
    "conv1d": "Input type ({}) and weight type ({}) should be the same",
    "conv2d": "Input type ({}) and weight type ({}) should be the same",
    "conv3d": "Input type ({}) and weight type ({}) should be the same",
}


class Unchecked:
    """Ids a lookup got whose values the dry run does not have (computed from fakes)."""

    def __init__(self, table: int) -> None:
        self.table = table


def kernel_check(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 real: Real) -> Exception | Unchecked | None:  # fmt: skip
    """The error the real op `name` would raise on these operands, an `Unchecked` where the
    ids of a lookup cannot be read, or None."""
    if name in _LOOKUPS:
        return _lookup(args, kwargs, real)
    if name in _CLASS_LOSSES:
        return _class_targets(args, kwargs, real)
    if name in _FLOAT_TARGET_LOSSES:
        return _float_target(args, kwargs)
    if name in _SAME_DTYPE:
        return _same_dtype(name, args, kwargs)
    if name == "softmax":
        return _dim_in_range(args, kwargs)
    return None


def _dim_in_range(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """softmax's dim, which the fake kernel does not check: torch's own IndexError."""
    x, dim = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "dim")
    if not isinstance(x, torch.Tensor) or type(dim) is not int:
        return None
    rank = max(x.dim(), 1)
    if -rank <= dim < rank:
        return None
    return IndexError(
        f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {dim})"
    )


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, key: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(key)


def _lookup(args: tuple[Any, ...], kwargs: dict[str, Any], real: Real) -> Any:
    ids, weight = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    if not isinstance(ids, torch.Tensor) or not isinstance(weight, torch.Tensor):
        return None
    if ids.is_floating_point() or ids.dtype == torch.bool or weight.dim() != 2:
        return None  # the fake kernel raises for these itself
    rows = int(weight.shape[0])
    if is_fake(ids) or ids.device.type == "meta":
        return Unchecked(rows)
    if ids.numel() == 0:
        return None
    with real():
        lo, hi = (int(v) for v in torch.aminmax(ids))
    if lo < 0 or hi >= rows:
        return IndexError("index out of range in self")
    return None


def _class_targets(args: tuple[Any, ...], kwargs: dict[str, Any], real: Real) -> Any:
    logits, target = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "target")
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    if is_fake(target) or target.is_floating_point() or target.numel() == 0:
        return None  # unknown values, or class probabilities
    ignore = kwargs.get("ignore_index", -100)
    if len(args) > 4 and isinstance(args[4], int):  # (input, target, weight, size_average, ...)
        ignore = args[4]
    classes = int(logits.shape[1]) if logits.dim() > 1 else int(logits.shape[0])
    with real():
        kept = target[target != ignore]
        if kept.numel() == 0:
            return None
        lo, hi = (int(v) for v in torch.aminmax(kept))
    if hi >= classes:
        return IndexError(f"Target {hi} is out of bounds.")
    if lo < 0:
        return IndexError(f"Target {lo} is out of bounds.")
    return None


def _float_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    logits, target = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "target")
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    if logits.is_floating_point() and not target.is_floating_point():
        return RuntimeError(f"Found dtype {_word(target.dtype)} but expected {_word(logits.dtype)}")
    return None


def _same_dtype(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    a = _arg(args, kwargs, 0, "input")
    b = _arg(args, kwargs, 1, "weight" if name.startswith(("linear", "conv")) else "other")
    if name == "addmm":
        a, b = _arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2")
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return None
    if not (a.is_floating_point() and b.is_floating_point()) or a.dtype == b.dtype:
        return None
    if _autocast(a):
        return None  # autocast casts both operands: the real op runs
    return RuntimeError(_SAME_DTYPE[name].format(_word(a.dtype), _word(b.dtype)))


def _autocast(tensor: torch.Tensor) -> bool:
    try:
        return bool(torch.is_autocast_enabled(tensor.device.type))
    except Exception:  # pragma: no cover - a device type autocast does not know
        return False


def _word(dtype: torch.dtype) -> str:
    """torch's scalar type name, as its errors spell it: Float, Double, Long, BFloat16."""
    return {
        torch.float32: "Float",
        torch.float64: "Double",
        torch.float16: "Half",
        torch.bfloat16: "BFloat16",
        torch.int64: "Long",
        torch.int32: "Int",
        torch.int16: "Short",
        torch.int8: "Char",
        torch.uint8: "Byte",
        torch.bool: "Bool",
    }.get(dtype, str(dtype).removeprefix("torch."))
