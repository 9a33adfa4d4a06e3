"""The TensorInfo already given to each live tensor, kept without keeping the tensor alive.

A tensor that travels from one module to the next is the same Python object, so it is
described once; the entry is checked against the tensor's version counter (an in-place op
such as `ReLU(inplace=True)` makes it a new value).
"""

from __future__ import annotations

import weakref

import torch

from inspector.engine.records import TensorInfo

_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_function_mode_on = torch._C._is_torch_function_mode_enabled


def tensor_version(t: torch.Tensor) -> int | None:
    """The in-place version counter, or None where torch keeps none (inference tensors)."""
    try:
        if type(t) is not torch.Tensor or _function_mode_on():
            with _NO_TORCH_FUNCTION():  # a subclass's __torch_function__ sees no read of ours
                return int(t._version)
        return int(t._version)
    except (RuntimeError, AttributeError):
        return None


# The registry sweeps its dead entries when it holds more than this many, or more than twice
# the live ones it kept after the last sweep: amortised O(1) per tensor remembered.
_SWEEP_AT = 1024


class TensorRegistry:
    """Remembers the TensorInfo given to each live tensor, without keeping the tensor alive.

    The weak references carry no callback: a callback would run inside the user's pass each
    time a described tensor dies, and a Ctrl+C landing in it is printed as "Exception ignored"
    and lost. Dead entries are swept instead, lazily, when the table has doubled.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[torch.Tensor], int | None, TensorInfo]] = {}
        self._sweep_at = _SWEEP_AT

    def lookup(self, t: torch.Tensor, *, any_version: bool = False) -> TensorInfo | None:
        entry = self._entries.get(id(t))
        if entry is None or entry[0]() is not t:  # a dead entry whose id was given again
            return None
        if any_version:
            return entry[2]
        version = tensor_version(t)
        if version is None or version != entry[1]:
            return None
        return entry[2]

    def remember(self, t: torch.Tensor, info: TensorInfo) -> None:
        try:
            ref = weakref.ref(t)
        except TypeError:
            return
        entries = self._entries
        entries[id(t)] = (ref, tensor_version(t), info)
        if len(entries) > self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        entries = self._entries
        for key in [key for key, entry in entries.items() if entry[0]() is None]:
            del entries[key]
        self._sweep_at = max(_SWEEP_AT, 2 * len(entries))

    def __len__(self) -> int:
        """Entries held, the dead ones not yet swept included."""
        return len(self._entries)

    def replace(self, infos: dict[int, TensorInfo]) -> None:
        """Swap the infos given by id in `infos` for their replacements."""
        if not infos:
            return
        for key, (ref, version, info) in list(self._entries.items()):
            new = infos.get(id(info))
            if new is not None:
                self._entries[key] = (ref, version, new)

    def clear(self) -> None:
        self._entries.clear()
        self._sweep_at = _SWEEP_AT
