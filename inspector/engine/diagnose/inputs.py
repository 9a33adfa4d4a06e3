"""The model's own inputs by name, and the config a Hugging Face model was built from.

A diagnosis that blames an input names it (`attention_mask (2, 10)`) and says where the shape
it should have comes from: another input's shape or an attribute of the model's `config`.
Everything is read from the records and from instance dictionaries: the names of the root
call's parameters from its `forward` signature, the config from the root module's `__dict__`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from inspector.engine.diagnose.context import Context
from inspector.engine.records import TensorInfo, first_tensor
from inspector.engine.records import format_shape as fmt

# Inputs of a sequence model that line up token by token with `input_ids`.
ALIGNED = ("attention_mask", "token_type_ids", "position_ids", "labels", "decoder_attention_mask")
SEQUENCE_INPUTS = ("input_ids", "inputs_embeds", "input_values", "input_features")


def root_module(ctx: Context) -> Any:
    return ctx.live_module(0)


def named_inputs(ctx: Context) -> list[tuple[str, TensorInfo]]:
    """The root call's tensor inputs with the names its forward gives them."""
    if not ctx.trace.calls:
        return []
    root = ctx.trace.calls[0]
    names: list[str] = []
    module = root_module(ctx)
    forward = getattr(type(module), "forward", None) if module is not None else None
    if forward is not None:
        try:
            params = list(inspect.signature(forward).parameters.values())[1:]
            names = [
                p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            names = []
    found: list[tuple[str, TensorInfo]] = []
    for i, value in enumerate(root.inputs):
        info = first_tensor(value)
        if info is not None:
            found.append((names[i] if i < len(names) else f"input {i}", info))
    if root.kwargs is not None:
        for name, value in root.kwargs.fields:
            info = value if isinstance(value, TensorInfo) else None
            if info is not None:
                found.append((name, info))
    return found


def input_named(ctx: Context, name: str) -> TensorInfo | None:
    for found, info in named_inputs(ctx):
        if found == name:
            return info
    return None


def name_of(ctx: Context, x: Any) -> str | None:
    """The name of the model input that `x` is (the very tensor, as recorded), or None."""
    if not isinstance(x, torch.Tensor) or ctx.lookup is None:
        return None
    inputs = named_inputs(ctx)
    candidates = [x._base] if type(x) is torch.Tensor and x._base is not None else []
    for t in [x, *candidates]:
        info = ctx.lookup(t)
        if info is None or info.producer is not None or info.view_of is not None:
            continue
        for name, recorded in inputs:
            if recorded is info:
                return name
    return None


def config_of(ctx: Context) -> Any:
    """The `config` a Hugging Face model (or any model holding one) was built from."""
    module = root_module(ctx)
    if module is None:
        return None
    config = vars(module).get("config")
    return config if config is not None and hasattr(type(config), "to_dict") else None


def config_value(config: Any, name: str) -> Any:
    """An attribute of the config, following its aliases (GPT-2's n_positions is
    max_position_embeddings), read from the instance dictionary."""
    if config is None:
        return None
    own = vars(config)
    if name in own:
        return own[name]
    alias = getattr(type(config), "attribute_map", {}).get(name)
    if isinstance(alias, str) and alias in own:
        return own[alias]
    return None


def config_name(config: Any, name: str) -> str:
    """`config.max_position_embeddings` (`n_positions` where the config calls it so)."""
    alias = getattr(type(config), "attribute_map", {}).get(name)
    if isinstance(alias, str) and alias not in ("", name) and name not in vars(config):
        return f"config.{name} ({alias})"
    return f"config.{name}"


def has_resize(ctx: Context) -> bool:
    module = root_module(ctx)
    return module is not None and callable(getattr(type(module), "resize_token_embeddings", None))


def sequence_input(ctx: Context) -> tuple[str, TensorInfo] | None:
    """The input that sets the sequence length: input_ids and its kin, else the first 2-D+."""
    inputs = named_inputs(ctx)
    for name, info in inputs:
        if name in SEQUENCE_INPUTS and info.ndim >= 2:
            return name, info
    for name, info in inputs:
        if info.ndim >= 2:
            return name, info
    return None


def described(name: str, info: TensorInfo) -> str:
    return f"{name} {fmt(info.shape)}"


def expectation(config: Any, value: int, names: tuple[str, ...]) -> str:
    """` (config.num_channels=3)` when the config holds `value` under one of `names`."""
    for name in names:
        if config_value(config, name) == value:
            return f" ({config_name(config, name)}={value})"
    return ""
