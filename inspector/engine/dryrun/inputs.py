"""What a dry run is handed: its inputs (shapes or values, copied) and the model's stand-ins.

Inputs: a positional `torch.Size` is a shape; a positional tuple of ints is one only when no
positional argument is a tensor. Everything else is a value, copied with its tensors made fake
(integer and bool tensors stay real copies: see inspector.engine.dryrun.fake).

The model: every parameter, buffer and tensor attribute is swapped in place for its stand-in;
the snapshot that isolates the run puts the real ones back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import torch
from torch import nn

from inspector.engine.dryrun.fake import FakeRun, Unverifiable, is_fake


def scripted(module: Any) -> bool:
    """A TorchScript module: run whole on the fakes (its own tensors stay real, and ops
    on them alone are undone by the snapshot), never swapped into or wrapped."""
    return isinstance(module, torch.jit.ScriptModule)


def modules_of(root: nn.Module) -> Iterator[nn.Module]:
    """The modules of `root`, not looking inside TorchScript ones."""
    pending, seen = [root], set()
    while pending:
        module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        if not scripted(module):
            pending.extend(c for c in reversed(module._modules.values()) if c is not None)


def is_lazy(module: nn.Module) -> bool:
    return any(
        isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False)
    )


def device_of(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def dry_inputs(
    fake: FakeRun,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    target: Any,
    device: torch.device,
) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Copies of the inputs for the run; shapes as the docstring of `check` says."""
    shapes_allowed = not any(isinstance(a, torch.Tensor) for a in args)
    fake_args = tuple(
        fake.empty(a, torch.float32, device)
        if _is_shape(a, sized_only=not shapes_allowed)
        else fake.convert(a, device)
        for a in args
    )
    fake_kwargs = {k: fake.convert(v, device) for k, v in kwargs.items()}
    fake_target = (
        fake.empty(target, torch.float32, device)
        if _is_shape(target, sized_only=False)
        else fake.convert(target, device)
    )
    return fake_args, fake_kwargs, fake_target


def _is_shape(value: Any, *, sized_only: bool) -> bool:
    if isinstance(value, torch.Size):
        return True
    if sized_only or type(value) is not tuple or not value:
        return False
    return all(type(d) is int and d >= 0 for d in value)


def swap_in_stand_ins(fake: FakeRun, roots: tuple[Any, ...], device: torch.device) -> None:
    """Put a stand-in in place of every parameter, buffer and tensor attribute of the modules.

    Written straight into the modules' tables (the snapshot puts the real ones back): a
    parameter stays an nn.Parameter, so a forward that hands one module's weight to another
    (`layer.weight = self.fc.weight`) works as it does for real, and a tensor shared by two
    modules (tied weights) gets one stand-in. Integer buffers (position ids, token types,
    step counters) become real copies, so lookups through them are checked for real.
    """
    made: dict[int, torch.Tensor] = {}

    def stand_in(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in made:
            param = isinstance(tensor, nn.Parameter)
            made[id(tensor)] = (fake.parameter if param else fake.tensor)(tensor, device)
        return made[id(tensor)]

    for root in roots:
        if not isinstance(root, nn.Module):
            continue
        for module in modules_of(root):
            if scripted(module):
                continue
            tables: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for table in tables:
                for name, tensor in list(table.items()):
                    if tensor is not None and not is_fake(tensor) and not fake.owns(tensor):
                        _assign(module, table, name, stand_in(tensor))
            state = vars(module)
            for name, value in list(state.items()):
                if isinstance(value, torch.Tensor) and not is_fake(value):
                    with suppress(Unverifiable):  # else met as a real tensor: guarded
                        state[name] = stand_in(value)


def _assign(module: nn.Module, table: dict[str, Any], name: str, value: torch.Tensor) -> None:
    """Through the module's own __setattr__ (an RNN refreshes its flat weight list there), or
    into its table where that refuses. nn.Module's __setattr__ is passed by: all it would add
    is running the process's global parameter and buffer registration hooks on a stand-in."""
    if type(module).__setattr__ is nn.Module.__setattr__:
        table[name] = value
        return
    try:
        setattr(module, name, value)
    except Exception:
        table[name] = value
    if table.get(name) is not value:
        table[name] = value
