"""What the model expects, one tensor at a time, and the helpers the checkpoint rules share:
the dimensions that differ, how a module is named in a fix, the Hugging Face config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

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
