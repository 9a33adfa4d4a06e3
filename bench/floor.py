"""The floor for statistics: a forward that reads every value a trace describes, once.

A trace with statistics reads each distinct tensor value of the pass once (a module's inputs
when it is entered, its outputs when it returns; a tensor already described, at the same
version, is not read again). Nothing that computes exact statistics can read less. `SumReads`
does exactly those reads with one `torch.sum` each (the fastest full read torch has) from
plain module hooks, and does nothing else: `with SumReads(model): model(x)` is that floor.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in a value: itself, or the items of a tuple, list or dict, nested."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)


class SumReads:
    """Hooks on every module of a model that `torch.sum` each tensor value not read before."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.reads = 0
        self.bytes = 0
        self._seen: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        self._handles: list[Any] = []

    def _read(self, value: Any) -> None:
        for t in tensors(value):
            key = id(t)
            seen = self._seen.get(key)
            version = t._version
            if seen is not None and seen[0]() is t and seen[1] == version:
                continue
            if t.is_floating_point() and t.numel():
                torch.sum(t)
                self.reads += 1
                self.bytes += t.numel() * t.element_size()
            self._seen[key] = (weakref.ref(t), version)

    def _pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self._read(args)
        self._read(kwargs)

    def _post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        self._read(output)

    def __enter__(self) -> SumReads:
        self.reads = self.bytes = 0
        self._seen.clear()
        for m in self.model.modules():
            self._handles.append(m.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(m.register_forward_hook(self._post, with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._seen.clear()


def floor_run(model: nn.Module, *args: Any) -> Any:
    """`model(*args)` with the floor's reads."""
    with SumReads(model):
        return model(*args)
