"""Turn live values (tensors, nested containers, anything) into immutable records.

A tensor that travels from one module to the next is the same Python object, so it is
described once: the registry maps a live tensor to the TensorInfo it already got, checked
against its version counter (an in-place op such as `ReLU(inplace=True)` makes it a new
value). This halves the statistics work and tells each input which call produced it.
"""

from __future__ import annotations

import dataclasses
import enum
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from inspector.engine.records import Struct, TensorInfo, Value, positional_builder
from inspector.engine.stats import (
    DeviceBatch,
    can_have_stats,
    compute_stats,
    device_packet,
    on_device,
    stats_from_packet,
)

MAX_ITEMS = 64  # items of one sequence or mapping to describe; the rest is counted
MAX_DEPTH = 8
MAX_TEXT = 60

_new_info = positional_builder(TensorInfo)

_SHORT_REPR = (str, torch.Size, torch.dtype, torch.device, slice, range, enum.Enum)


_DTYPE_NAMES: dict[torch.dtype, str] = {}
_DEVICE_NAMES: dict[torch.device, str] = {}


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def device_name(device: torch.device) -> str:
    name = _DEVICE_NAMES.get(device)
    if name is None:
        name = _DEVICE_NAMES[device] = str(device)
    return name


def tensor_version(t: torch.Tensor) -> int | None:
    """The in-place version counter, or None where torch keeps none (inference tensors)."""
    try:
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


class Describer:
    """Describes values as records; one per pass, sharing the pass's tensor registry.

    Tensors on an accelerator get their statistics computed on the device but not read: their
    TensorInfo has `stats=None` until `settle()` brings every waiting packet to the host at
    once and returns the infos that replace them (`touched` counts the described values that
    held a waiting info, so a caller knows which records to update).
    """

    def __init__(self, *, stats: bool = True, registry: TensorRegistry | None = None) -> None:
        self.stats = stats
        self.registry = registry if registry is not None else TensorRegistry()
        self.device = DeviceBatch()
        self.touched = 0
        self._waiting: set[int] = set()  # ids of infos whose statistics are on the device
        self._resolved: dict[int, TensorInfo] = {}  # id of a waiting info -> its settled info

    def settle(self) -> dict[int, TensorInfo]:
        """Read every waiting packet (one transfer per device); {id(old info): new info}."""
        self.device.flush()
        resolved, self._resolved = self._resolved, {}
        self.registry.replace(resolved)
        return resolved

    def forget_waiting(self) -> None:
        """Drop what still waits on the device (a new pass starts; its records are gone)."""
        self.device.clear()
        self._waiting.clear()
        self._resolved.clear()

    def _defer(self, t: torch.Tensor, info: TensorInfo) -> None:
        key, numel = id(info), t.numel()
        self._waiting.add(key)

        def done(values: Any) -> None:
            self._waiting.discard(key)
            self._resolved[key] = dataclasses.replace(info, stats=stats_from_packet(values, numel))

        self.device.add(device_packet(t), done)
        self.touched += 1

    def describe(self, value: Any, producer: int | None = None, _depth: int = 0) -> Value:
        """The record of `value`; tensors not seen before are attributed to `producer`."""
        if isinstance(value, torch.Tensor):
            return self.tensor(value, producer)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if _depth >= MAX_DEPTH:
            return f"<{type(value).__name__}>"
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
            items = [(name, getattr(value, name)) for name in value._fields]
            return self._struct(type(value).__name__, items, producer, _depth)
        if isinstance(value, (tuple, list)):
            described = [self.describe(v, producer, _depth + 1) for v in value[:MAX_ITEMS]]
            if len(value) > MAX_ITEMS:
                described.append(f"... {len(value) - MAX_ITEMS} more")
            return tuple(described)
        if isinstance(value, Mapping):
            items = [(str(k), v) for k, v in list(value.items())[: MAX_ITEMS + 1]]
            return self._struct(type(value).__name__, items, producer, _depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
            return self._struct(type(value).__name__, items, producer, _depth)
        return short_repr(value)

    def _struct(
        self, type_name: str, items: list[tuple[str, Any]], producer: int | None, depth: int
    ) -> Struct:
        fields = tuple(
            (name, self.describe(v, producer, depth + 1)) for name, v in items[:MAX_ITEMS]
        )
        return Struct(type_name, fields)

    def tensor(self, t: torch.Tensor, producer: int | None) -> TensorInfo:
        # The hooks' hot path, written out: each call it makes costs microseconds right
        # after a large op (TensorRegistry.lookup and tensor_version inline).
        entry = self.registry._entries.get(id(t))
        known = None
        if entry is not None and entry[0]() is t:
            try:
                version: int | None = t._version
            except (RuntimeError, AttributeError):  # inference tensors keep no version
                version = None
            if version is not None and version == entry[1]:
                known = entry[2]
        if known is not None:
            if id(known) in self._waiting:
                self.touched += 1
            elif known.stats is None and self.stats:  # described while statistics were off
                if on_device(t):
                    if can_have_stats(t):
                        self._defer(t, known)
                    return known
                stats = compute_stats(t)
                if stats is not None:
                    known = dataclasses.replace(known, stats=stats)
                    self.registry.remember(t, known)
            return known
        view_of = None
        base = getattr(t, "_base", None)
        if base is not None and isinstance(base, torch.Tensor):
            base_info = self.registry.lookup(base, any_version=True)
            if base_info is not None:
                view_of = base_info.producer
        try:
            shape = tuple(map(int, t.shape))
        except Exception:  # nested (no sizes, or a ragged symbol) or symbolic sizes
            shape = _odd_shape(t)
        try:
            contiguous = t.is_contiguous()
        except RuntimeError:  # sparse layouts have no strides
            contiguous = False
        layout = t.layout
        deferred = self.stats and on_device(t)
        dtype, device = t.dtype, t.device
        info = _new_info(
            shape,
            _DTYPE_NAMES.get(dtype) or dtype_name(dtype),
            _DEVICE_NAMES.get(device) or device_name(device),
            t.requires_grad,
            compute_stats(t) if self.stats and not deferred else None,
            "strided" if layout is torch.strided else str(layout).removeprefix("torch."),
            contiguous,
            producer,
            view_of,
        )
        if deferred and can_have_stats(t):
            self._defer(t, info)
        self.registry.remember(t, info)
        return info


def live_tensors(value: Any, _depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors of a live value in the order `tensors_in` lists them in its description."""
    if isinstance(value, torch.Tensor):
        yield value
        return
    if value is None or isinstance(value, (bool, int, float, str)) or _depth >= MAX_DEPTH:
        return
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        items: list[Any] = [getattr(value, name) for name in value._fields][:MAX_ITEMS]
    elif isinstance(value, (tuple, list)):
        items = list(value[:MAX_ITEMS])
    elif isinstance(value, Mapping):
        items = list(value.values())[:MAX_ITEMS]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)][:MAX_ITEMS]
    else:
        return
    for item in items:
        yield from live_tensors(item, _depth + 1)


def short_repr(value: Any) -> str:
    """A short, safe text for a non-tensor value: never calls an arbitrary object's repr."""
    if isinstance(value, _SHORT_REPR):
        text = repr(value) if not isinstance(value, str) else value
    elif callable(value):
        text = f"<{getattr(value, '__name__', type(value).__name__)}>"
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _odd_shape(t: torch.Tensor) -> tuple[int, ...]:
    """The shape of a tensor whose sizes are not all plain integers, -1 where unknown."""
    if t.is_nested:  # ragged: only the number of components and the rank are fixed
        return (t.size(0), *(-1 for _ in range(t.dim() - 1)))
    return tuple(-1 for _ in t.shape)  # symbolic sizes
