"""Stand-in outputs for a dry run that goes on past a failure.

A failed layer returns what it declares: Linear its out_features, Conv its out_channels and
the spatial formula, norms and activations their input's shape. A failed op in the user's
code returns the shape the user evidently meant (a failed view keeps its input, a cat sums
the concatenated dim). None: no honest stand-in, the run stops there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.spatial import stage_of
from inspector.engine.records import format_shape

_SAME_SHAPE = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.Softmax,
)


_SPATIAL = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


def _empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device)


def _declared(shape: tuple[int, ...], x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """An output in the dtype of the layer's weight: what it gives once its input is right
    (a float64 input into a float32 Linear fails only there, not at every later layer)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.is_floating_point():
        return torch.empty(shape, dtype=weight.dtype, device=x.device)
    return _empty(shape, x)


def substitute_output(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What `module` would return if its input had the shape it expects, or None."""
    x = args[0] if args else next(iter(kwargs.values()), None)
    if not isinstance(x, torch.Tensor):
        return None
    shape = tuple(x.shape)
    if isinstance(module, nn.Linear):
        if x.dim() > 2 and (shape[-1] != module.in_features):
            return _declared((shape[0], module.out_features), x, module)  # a forgotten flatten
        return _declared((*shape[:-1], module.out_features), x, module)
    if isinstance(module, _SPATIAL):
        return _spatial(module, x)
    if isinstance(module, _SAME_SHAPE):
        return _empty(shape, x)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return torch.empty((*shape, module.embedding_dim), device=x.device)
    if isinstance(module, nn.RNNBase):
        return _rnn(module, x)
    if isinstance(module, nn.MultiheadAttention):
        return _empty((*shape[:-1], module.embed_dim), x), None
    if isinstance(module, nn.modules.loss._Loss):
        return _empty((), x)
    return None


def _spatial(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    stage = stage_of("", module)
    if stage is None or x.dim() < 3:
        return None
    channels = getattr(module, "out_channels", x.shape[1])
    dims = getattr(module, "_reversed_padding_repeated_twice", None)
    spatial = x.dim() - 2 if dims is None else len(dims) // 2
    sizes = [max(1, stage.out(int(s))) for s in x.shape[-spatial:]]
    return _declared((x.shape[0], channels, *sizes), x, module)


def _rnn(module: nn.RNNBase, x: torch.Tensor) -> Any:
    dirs = 2 if module.bidirectional else 1
    if x.dim() != 3:
        return None
    batch = x.shape[0] if module.batch_first else x.shape[1]
    out = (*x.shape[:2], module.hidden_size * dirs)
    h = _empty((module.num_layers * dirs, batch, module.hidden_size), x)
    state: Any = (h, _empty(tuple(h.shape), x)) if isinstance(module, nn.LSTM) else h
    return _empty(out, x), state


def substitute_op(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A stand-in result for a failed op in the user's code, or None."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if name in ("view", "reshape", "flatten", "unflatten") and tensors:
        return tensors[0]  # as if the failed reshape were not there
    if name in ("cat", "concat", "concatenate") and args and isinstance(args[0], (list, tuple)):
        parts = [t for t in args[0] if isinstance(t, torch.Tensor)]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if not parts or not isinstance(dim, int):
            return None
        shape = list(parts[0].shape)
        dim %= len(shape)
        shape[dim] = sum(int(p.shape[dim]) for p in parts if p.dim() == len(shape))
        return _empty(tuple(shape), parts[0])
    if name in ("matmul", "mm", "bmm", "__matmul__") and len(tensors) >= 2:
        a, b = tensors[0], tensors[1]
        if a.dim() >= 2 and b.dim() >= 2:
            return _empty((*a.shape[:-1], b.shape[-1]), a)
    if len(tensors) >= 2 and name.strip("_").removeprefix("r").removeprefix("i") in (
        "add", "sub", "mul", "div", "truediv"
    ):  # fmt: skip
        return _empty(tuple(tensors[0].shape), tensors[0])
    return None


def kernel_gap(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """(stand-in, its shape in words) for an op that runs for real on these inputs but has
    no fake-tensor kernel for them, or None.

    grouped_mm (the experts of Mixtral, Qwen-MoE in transformers) runs in float32 on CPU,
    but its meta kernel accepts bfloat16 only.
    """
    if name not in ("grouped_mm", "_grouped_mm") or len(args) < 2:
        return None
    a, b = args[0], args[1]
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return None
    if a.dtype == torch.bfloat16 and b.dtype == torch.bfloat16:
        return None  # the kernel exists: a failure here is the model's
    offs = kwargs.get("offs", args[2] if len(args) > 2 else None)
    if a.dim() == 2 and b.dim() == 3:
        shape: tuple[int, ...] = (a.shape[0], b.shape[-1])
    elif a.dim() == 3 and b.dim() == 3:
        shape = (a.shape[0], a.shape[1], b.shape[-1])
    elif a.dim() == 2 and b.dim() == 2 and isinstance(offs, torch.Tensor):
        shape = (offs.shape[0], a.shape[0], b.shape[-1])
    else:
        return None
    dtype = kwargs.get("out_dtype") or a.dtype
    stand_in = torch.empty(shape, dtype=dtype, device=a.device)
    return stand_in, format_shape(shape)
