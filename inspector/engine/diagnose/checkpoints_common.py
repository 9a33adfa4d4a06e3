"""What the model expects, one tensor at a time, and the helpers the checkpoint rules share:
the dimensions that differ, how a module is named in a fix, the Hugging Face config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from inspector.engine.diagnose.checkpoints_report import Shape, q


@dataclass(frozen=True, slots=True)
class Entry:
    """One tensor the model expects (internal: it holds the module)."""

    key: str
    shape: Shape | None  # None: a lazy parameter or extra state (any value loads)
    module: nn.Module
    path: str
    name: str
    tensor_id: int


Pair = tuple[Entry, Shape | None]


def positional(key: str) -> bool:
    return any(
        re.fullmatch(r"wpe|pos|.*position.*|pos_?(embed|emb|enc|ids)\w*", part, re.IGNORECASE)
        for part in key.split(".")
    )


def differing(model_shape: Shape | None, ckpt: Shape | None) -> list[int] | None:
    """The dimensions that differ, None when the ranks differ."""
    if model_shape is None or ckpt is None or len(model_shape) != len(ckpt):
        return None
    return [i for i, (a, b) in enumerate(zip(model_shape, ckpt, strict=True)) if a != b]


def module_ref(path: str) -> str:
    """`model.a.b` for a module path, through get_submodule where a part is not a name."""
    if not path:
        return "model"
    if all(part.isidentifier() for part in path.split(".")):
        return "model." + path
    return f"model.get_submodule({q(path)})"


def assign(path: str, expr: str) -> str:
    parent, _, leaf = path.rpartition(".")
    if all(part.isidentifier() for part in path.split(".")):
        return f"{module_ref(path)} = {expr}"
    return f"setattr({module_ref(parent)}, {q(leaf)}, {expr})"


def hf_config(model: nn.Module) -> Any:
    """The model's Hugging Face config, read from its instance dict (None for others)."""
    config = model.__dict__.get("config")
    return config if hasattr(type(config), "to_dict") else None


def config_has(model: nn.Module, names: tuple[str, ...], value: int) -> str | None:
    config = hf_config(model)
    if config is None:
        return None
    for name in names:
        found = vars(config).get(name)
        if name == "num_labels" and isinstance(vars(config).get("id2label"), dict):
            found = len(vars(config)["id2label"])  # a property of the config, read as stored
        if found == value:
            return name
    return None


def one_dim(pairs: list[Pair], dim: int) -> list[Pair]:
    return [(e, c) for e, c in pairs if differing(e.shape, c) == [dim]]


def model_entries(model: nn.Module) -> dict[str, Entry]:
    """What load_state_dict expects: every parameter and persistent buffer (and extra state)
    under each name its module has, in the model's order."""
    entries: dict[str, Entry] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        prefix = path + "." if path else ""
        local: list[tuple[str, Any]] = [
            (n, p) for n, p in module._parameters.items() if p is not None
        ]
        skip = module._non_persistent_buffers_set
        local += [(n, b) for n, b in module._buffers.items() if b is not None and n not in skip]
        for name, tensor in local:
            lazy = isinstance(tensor, UninitializedParameter | UninitializedBuffer)
            shape = None if lazy else checkpoint_shape(tensor)
            entries[prefix + name] = Entry(prefix + name, shape, module, path, name, id(tensor))
        if type(module).get_extra_state is not nn.Module.get_extra_state:
            key = prefix + "_extra_state"
            entries[key] = Entry(key, None, module, path, "_extra_state", 0)
    return entries


def checkpoint_shape(value: Any) -> Shape | None:
    """The shape of a tensor (a subclass's own code is not called), None for anything else."""
    if not isinstance(value, torch.Tensor):
        return None
    with torch._C.DisableTorchFunctionSubclass():
        return tuple(int(n) for n in value.shape)


def same(model_shape: Shape | None, ckpt_shape: Shape | None) -> bool:
    """Whether load_state_dict takes the value: equal shapes, a 1-element vector for a
    scalar (torch's old format), anything for a lazy parameter or extra state."""
    if model_shape is None:
        return True
    if ckpt_shape is None:
        return False
    return model_shape == ckpt_shape or (model_shape == () and len(ckpt_shape) == 1)
