"""Turn live values (tensors, nested containers, anything) into immutable records.

A tensor that travels from one module to the next is the same Python object, so it is
described once: the registry (`tensor_registry`) maps a live tensor to the TensorInfo it
already got, checked against its version counter (an in-place op such as
`ReLU(inplace=True)` makes it a new value). This halves the statistics work and tells each
input which call produced it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import itertools
import types
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from inspector.engine.capture.device_stats import (
    DeviceBatch,
    device_packet,
    on_device,
    stats_from_packet,
)
from inspector.engine.capture.stats import can_have_stats, compute_stats
from inspector.engine.capture.tensor_registry import TensorRegistry
from inspector.engine.records import Struct, TensorInfo, Value, positional_builder

MAX_ITEMS = 64  # items of one sequence or mapping to describe; the rest is counted
MAX_DEPTH = 8
MAX_TEXT = 60

_new_info = positional_builder(TensorInfo)
_TENSOR = torch.Tensor
_STRIDED = torch.strided
_weakref = weakref.ref
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_function_mode_on = torch._C._is_torch_function_mode_enabled

_SHORT_REPR = (str, torch.Size, torch.dtype, torch.device, slice, range, enum.Enum)
_NAMED_CALLABLES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
)


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
        kind = type(value)
        if value is None or kind is bool or kind is int or kind is float:
            return value
        if _depth >= MAX_DEPTH:
            return f"<{type_name(value)}>"
        parts = _parts(value, _depth)
        if parts is None:
            return _leaf(value)
        name, items, more = parts
        described = [self.describe(v, producer, _depth + 1) for _, v in items]
        if name is None:
            if more:
                described.append(f"... {more} more")
            return tuple(described)
        return Struct(name, tuple(zip([k for k, _ in items], described, strict=True)))

    def tensor(self, t: torch.Tensor, producer: int | None) -> TensorInfo:
        """The record of tensor `t`, read with torch functions disabled where a subclass or
        a torch function mode would see the reads (a plain tensor and no mode: no cost)."""
        if type(t) is not _TENSOR or _function_mode_on():
            with _NO_TORCH_FUNCTION():  # neither a subclass nor a mode sees our reads
                return self._tensor(t, producer)
        # A tensor described already, unchanged (a module's input: the output of the call
        # before), with nothing left to add: answered here, one call less on the hot path.
        entry = self.registry._entries.get(id(t))
        if entry is not None and entry[0]() is t:
            known = entry[2]
            if (known.stats is not None or not self.stats) and not self._waiting:
                try:
                    if t._version == entry[1]:
                        return known
                except (RuntimeError, AttributeError):  # inference tensors keep no version
                    pass
        return self._tensor(t, producer)

    def _tensor(self, t: torch.Tensor, producer: int | None) -> TensorInfo:
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
            # A plain tensor's sizes are ints (tuple() of them: half the time of map(int));
            # a subclass may hold symbols.
            shape = tuple(t.shape) if type(t) is _TENSOR else tuple(map(int, t.shape))
        except Exception:  # nested (no sizes, or a ragged symbol) or symbolic sizes
            shape = _odd_shape(t)
        try:
            contiguous = t.is_contiguous()
        except RuntimeError:  # sparse layouts have no strides
            contiguous = False
        layout = t.layout
        wanted = self.stats
        deferred = wanted and on_device(t)
        dtype = t.dtype
        if type(t) is _TENSOR and t.is_cpu:  # "cpu" (t.device builds a device object)
            where = "cpu"
        else:
            device = t.device
            where = _DEVICE_NAMES.get(device) or device_name(device)
        info = _new_info(
            shape,
            _DTYPE_NAMES.get(dtype) or dtype_name(dtype),
            where,
            t.requires_grad,
            compute_stats(t) if wanted and not deferred else None,
            "strided" if layout is _STRIDED else str(layout).removeprefix("torch."),
            contiguous,
            producer,
            view_of,
        )
        if deferred and can_have_stats(t):
            self._defer(t, info)
        # TensorRegistry.remember, written out
        try:
            ref = _weakref(t)
        except TypeError:
            return info
        try:
            version = t._version
        except (RuntimeError, AttributeError):  # inference tensors keep no version
            version = None
        registry = self.registry
        entries = registry._entries
        entries[id(t)] = (ref, version, info)
        if len(entries) > registry._sweep_at:
            registry._sweep()
        return info


def live_tensors(value: Any, _depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors of a live value in the order `tensors_in` lists them in its description."""
    if isinstance(value, torch.Tensor):
        yield value
        return
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or _depth >= MAX_DEPTH:
        return
    parts = _parts(value, _depth)
    if parts is not None:
        for _, item in parts[1]:
            yield from live_tensors(item, _depth + 1)


def _parts(value: Any, depth: int) -> tuple[str | None, list[tuple[str, Any]], int] | None:
    """How `describe` takes a non-tensor value at `depth` apart: (None, items, how many more)
    for a sequence, (type name, named items, 0) for a record, a mapping or an object with
    tensor attributes, None for a leaf. Reads what is stored: no method of a user's class
    runs (a list subclass's `__getitem__`, a namedtuple's field properties), except the
    `items()` of a mapping that is not a dict."""
    if isinstance(value, tuple):
        fields = getattr(type(value), "_fields", None)
        if isinstance(fields, tuple):  # a namedtuple (PackedSequence, a user's record)
            items = list(zip(fields, tuple.__iter__(value), strict=False))[:MAX_ITEMS]
            return type_name(value), [(_key(k), v) for k, v in items], 0
        more = max(0, tuple.__len__(value) - MAX_ITEMS)
        return None, [("", v) for v in tuple.__getitem__(value, slice(MAX_ITEMS))], more
    if isinstance(value, list):
        more = max(0, list.__len__(value) - MAX_ITEMS)
        return None, [("", v) for v in list.__getitem__(value, slice(MAX_ITEMS))], more
    if isinstance(value, Mapping):
        pairs = dict.items(value) if isinstance(value, dict) else value.items()
        items = [(_key(k), v) for k, v in itertools.islice(pairs, MAX_ITEMS)]
        return type_name(value), items, 0
    if isinstance(value, _SHORT_REPR) or callable(value) or isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        stored = instance_fields(value)
        kind: Any = type(value)  # its fields, as the class declares them
        names = [f.name for f in dataclasses.fields(kind)]
        found = [(name, stored[name]) for name in names if name in stored][:MAX_ITEMS]
        return type_name(value), found, 0
    stored = instance_fields(value)
    if not stored:
        return None
    public = [(k, v) for k, v in stored.items() if not k.startswith("_")][:MAX_ITEMS]
    for chosen in (public, list(stored.items())[:MAX_ITEMS]):  # private ones if need be
        if _carries_tensors(chosen, depth + 1):
            return type_name(value), chosen, 0
    return None  # an object without tensors: its type name says enough


def _carries_tensors(items: list[tuple[str, Any]], depth: int) -> bool:
    return any(next(live_tensors(v, depth), None) is not None for _, v in items)


def instance_fields(value: Any) -> dict[str, Any]:
    """The attributes an object stores, from its instance dict and its slots, read without
    running the class's code (no property, descriptor or `__getattr__`)."""
    stored: dict[str, Any] = {}
    instance = None
    for klass in type.__dict__["__mro__"].__get__(type(value)):
        own = type.__dict__["__dict__"].__get__(klass)
        slots = own.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if not isinstance(name, str) or name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):  # stored under the mangled name
                name = f"_{type.__dict__['__name__'].__get__(klass).lstrip('_')}{name}"
            slot = own.get(name)
            if type(slot) is types.MemberDescriptorType:
                with contextlib.suppress(AttributeError):  # a slot never assigned
                    stored.setdefault(_key(name), slot.__get__(value, klass))
        found = own.get("__dict__")
        if instance is None and type(found) is types.GetSetDescriptorType:
            instance = found.__get__(value, klass)  # the dict itself, whatever a subclass says
            if type(instance) is dict:
                for k, v in itertools.islice(dict.items(instance), 4 * MAX_ITEMS):
                    if isinstance(k, str):
                        stored.setdefault(_key(k), v)
    return stored


def type_name(value: Any) -> str:
    """The name of `value`'s class, as the class was defined (no metaclass involved)."""
    return _key(type.__dict__["__name__"].__get__(type(value)))


def _key(key: Any) -> str:
    """A mapping key or attribute name as a plain str; other keys by their value or type."""
    if isinstance(key, str):
        return str.__str__(key)  # a str subclass becomes a plain str, its __str__ not called
    if key is None or type(key) is bool:
        return str(key)
    if isinstance(key, (int, float)):
        return str(_leaf(key))
    return short_repr(key)


def _leaf(value: Any) -> Value:
    """A value with nothing inside: a subclass of int or float as the plain number it holds
    (the subclass's own methods not called), anything else as a short text."""
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return short_repr(value)


def short_repr(value: Any) -> str:
    """A short, safe text for a non-tensor value: never calls an arbitrary object's repr."""
    if isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, enum.Enum):  # its name as stored; a class may redefine __repr__
        name = instance_fields(value).get("_name_")
        text = f"{type_name(value)}.{name}" if isinstance(name, str) else f"<{type_name(value)}>"
    elif isinstance(value, slice):
        parts = (value.start, value.stop, value.step)
        if all(p is None or type(p) is int for p in parts):
            text = repr(value)
        else:
            text = "<slice>"
    elif isinstance(value, _SHORT_REPR):  # torch.Size, dtype, device, range: torch's own repr
        text = repr(value)
    elif isinstance(value, _NAMED_CALLABLES):
        name = value.__name__
        text = f"<{_key(name) if isinstance(name, str) else type_name(value)}>"
    elif isinstance(value, type):
        text = f"<{_key(type.__dict__['__name__'].__get__(value))}>"
    else:
        text = f"<{type_name(value)}>"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _odd_shape(t: torch.Tensor) -> tuple[int, ...]:
    """The shape of a tensor whose sizes are not all plain integers, -1 where unknown."""
    if t.is_nested:  # ragged: only the number of components and the rank are fixed
        return (t.size(0), *(-1 for _ in range(t.dim() - 1)))
    return tuple(-1 for _ in t.shape)  # symbolic sizes
