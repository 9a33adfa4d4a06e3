"""Fixes that can be checked: a layer put in the place of another, a change of an input.

An explanation offers them through `Explanation.replace_layer` and `change_input`; verify.py
walks the pass with each before it is shown.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Replacement:
    """A fix that puts another layer in the place of one of the model's."""

    fix: str  # the fix as offered
    module: nn.Module  # the live layer it replaces
    build: Callable[[], nn.Module | None]  # the fixed layer, on meta (None: cannot build)


@dataclass
class InputChange:
    """A fix that changes one of the model's inputs (its layout, its channels)."""

    fix: str
    name: str  # the input, as the model's forward names it
    change: Callable[[torch.Tensor], torch.Tensor]  # on a meta tensor of the input's shape


def resized(module: nn.Module, **changes: int) -> nn.Module | None:
    """The layer as the fix builds it, on meta: the same kind and settings, with `changes`
    (in_features, in_channels, num_features, normalized_shape, input_size, num_embeddings)."""
    with _unregistered():
        return _build(module, changes)


# The process-wide hooks nn.Module calls on every new parameter, buffer and submodule.
_REGISTRATION_HOOKS = (
    "_global_parameter_registration_hooks",
    "_global_buffer_registration_hooks",
    "_global_module_registration_hooks",
)


@contextmanager
def _unregistered() -> Iterator[None]:
    """Layers built here are not the program's: the user's global registration hooks (a
    library that wraps or counts every new parameter) do not see them. Where none is
    registered, which is nearly always, nothing is touched."""
    from torch.nn.modules import module as torch_module

    saved = {name: getattr(torch_module, name, None) for name in _REGISTRATION_HOOKS}
    hidden = [name for name, hooks in saved.items() if hooks]
    try:
        for name in hidden:
            setattr(torch_module, name, collections.OrderedDict())
        yield
    finally:
        for name in hidden:
            setattr(torch_module, name, saved[name])


def _build(module: nn.Module, changes: dict[str, int]) -> nn.Module | None:
    meta = torch.device("meta")
    try:
        if type(module) is nn.Linear:
            return nn.Linear(changes.get("in_features", module.in_features),
                             changes.get("out_features", module.out_features),
                             bias=module.bias is not None, device=meta,
                             dtype=module.weight.dtype)  # fmt: skip
        if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
            return type(module)(
                changes.get("in_channels", module.in_channels),
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=module.groups,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
                device=meta,
                dtype=module.weight.dtype,
            )
        if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            return type(module)(changes.get("num_features", module.num_features),
                                eps=module.eps, momentum=module.momentum, affine=module.affine,
                                track_running_stats=module.track_running_stats,
                                device=meta)  # fmt: skip
        if type(module) is nn.LayerNorm and "normalized_shape" in changes:
            affine = module.elementwise_affine
            shape = changes["normalized_shape"]
            return nn.LayerNorm(shape, eps=module.eps, elementwise_affine=affine, device=meta)
        if type(module) in (nn.RNN, nn.LSTM, nn.GRU):
            return type(module)(changes.get("input_size", module.input_size),
                                module.hidden_size, num_layers=module.num_layers,
                                bias=module.bias, batch_first=module.batch_first,
                                bidirectional=module.bidirectional, device=meta)  # fmt: skip
        if type(module) is nn.Embedding:
            return nn.Embedding(changes.get("num_embeddings", module.num_embeddings),
                                module.embedding_dim, padding_idx=module.padding_idx,
                                device=meta)  # fmt: skip
    except Exception:
        return None
    return None
