"""Isolation: save what a forward may write, and put back the very same objects afterwards.

A forward writes into more than its parameters: a cached rotary table or causal mask kept as
a plain attribute, a step counter, a submodule built on first use, a buffer it REASSIGNS
(`self.avg = 0.9 * self.avg + ...`), a hook it registers, the cache object it was given, the
dict a user's hook stores activations in. Copying saved values back into the live tensors
misses all of those, so a `Snapshot` records identities instead: for every mutable container
reachable from its roots (a module's `__dict__`, its `_parameters`, `_buffers`, `_modules` and
hook dicts, lists, dicts, sets, closure cells, the globals a hook or forward names) it keeps
the objects it holds, and `restore()` puts those same objects back and drops anything added.

With `values=True` it also keeps a copy of every tensor that is not a parameter (buffers,
cached tensors, inputs) and copies it back into a tensor whose values changed in place
(BatchNorm's running statistics).

`restore()` finishes even when a KeyboardInterrupt arrives in the middle of it: it starts
again from the top (every step is idempotent) and re-raises the interrupt once all is back.
"""

from __future__ import annotations

import collections
import functools
import operator
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import torch
from torch import nn

_MISSING: Any = object()

# Values that cannot be written into, and that hold nothing that can.
_ATOMS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    slice,
    type(Ellipsis),
    torch.dtype,
    torch.device,
    torch.Size,
    torch.layout,
    torch.memory_format,
)

# Objects not to walk into: code, types and modules (their state is not the forward's to
# write), weak references, and the callables of C extensions.
_OPAQUE = (
    type,
    types.ModuleType,
    types.CodeType,
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.FrameType,
    types.GeneratorType,
    types.CoroutineType,
    property,
    classmethod,
    staticmethod,
    # weakref.ref and its subclasses (KeyedRef)
    type(__import__("weakref").ref(nn.Module)),
)

_ATOM_TYPES = frozenset(_ATOMS)

_LIMIT = 200_000  # objects walked at most: past that, deeper objects are left as they are


def _library_function(fn: types.FunctionType) -> bool:
    """torch's and this package's own functions: their globals are not the user's state."""
    module = getattr(fn, "__module__", None) or ""
    return module.split(".", 1)[0] in ("torch", "inspector")


class Snapshot:
    """Everything reachable from `roots` that a forward may write, saved by identity.

    Args:
        roots: modules, inputs, hooks, functions; anything. Modules are walked through their
            `__dict__` (which holds `_parameters`, `_buffers`, `_modules` and the hook dicts)
            and their class's `forward` (the globals it names, its closure).
        values: also keep a copy of each non-parameter tensor, to copy back after an
            in-place update.
    """

    def __init__(self, roots: Iterable[Any], *, values: bool = False) -> None:
        self.values = values
        self.truncated = False  # the walk stopped at _LIMIT objects
        self._dicts: list[tuple[dict[Any, Any], list[Any], list[Any]]] = []
        self._lists: list[tuple[list[Any], list[Any]]] = []
        self._sets: list[tuple[set[Any], set[Any]]] = []
        self._deques: list[tuple[collections.deque[Any], list[Any]]] = []
        self._cells: list[tuple[types.CellType, Any]] = []
        self._slots: list[tuple[Any, str, Any]] = []
        self._names: list[tuple[dict[str, Any], str, Any]] = []  # globals a function names
        self._tensors: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        self._walk(list(roots))

    # -- saving ------------------------------------------------------------------------------

    def _walk(self, pending: list[Any]) -> None:
        seen: set[int] = set()
        keep: list[Any] = []  # objects made while walking (vars() of a slotted class) stay alive
        while pending:
            obj = pending.pop()
            if type(obj) in _ATOM_TYPES or id(obj) in seen or isinstance(obj, _ATOMS):
                continue
            if len(seen) >= _LIMIT:
                self.truncated = True
                return
            seen.add(id(obj))
            keep.append(obj)
            if isinstance(obj, torch.Tensor):
                self._tensor(obj)
            elif isinstance(obj, _OPAQUE):
                continue
            elif isinstance(obj, dict):
                values = list(obj.values())
                self._dicts.append((obj, list(obj), values))
                pending.extend(values)
                if hasattr(obj, "__dict__"):  # a dict subclass with attributes
                    pending.append(vars(obj))
            elif isinstance(obj, list):
                self._lists.append((obj, list(obj)))
                pending.extend(obj)
            elif isinstance(obj, (tuple, frozenset)):
                pending.extend(obj)
            elif isinstance(obj, set):
                self._sets.append((obj, set(obj)))
            elif isinstance(obj, collections.deque):
                self._deques.append((obj, list(obj)))
                pending.extend(obj)
            elif isinstance(obj, types.FunctionType):
                self._function(obj, pending)
            elif isinstance(obj, types.MethodType):
                pending.extend((obj.__self__, obj.__func__))
            elif isinstance(obj, functools.partial):
                pending.extend((obj.func, obj.args, obj.keywords))
            else:
                self._object(obj, pending)

    def _tensor(self, tensor: torch.Tensor) -> None:
        if not self.values or isinstance(tensor, nn.Parameter) or tensor.device.type == "meta":
            return
        if tensor.is_nested or tensor.layout != torch.strided:
            return
        try:
            with torch.no_grad():
                self._tensors.append((tensor, tensor._version, tensor.detach().clone()))
        except Exception:  # an inference tensor (no version counter), an exotic subclass
            pass

    def _function(self, fn: types.FunctionType, pending: list[Any]) -> None:
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                value = _MISSING
            self._cells.append((cell, value))
            if value is not _MISSING:
                pending.append(value)
        pending.extend((fn.__defaults__, fn.__kwdefaults__))
        if _library_function(fn):
            return
        scope = fn.__globals__
        for name in fn.__code__.co_names:
            value = scope.get(name, _MISSING)
            if value is not _MISSING and isinstance(value, _OPAQUE + _ATOMS):
                continue  # imports, classes, functions by name: not state
            self._names.append((scope, name, value))
            if value is not _MISSING:
                pending.append(value)

    def _object(self, obj: Any, pending: list[Any]) -> None:
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            pending.append(state)
        for cls in type(obj).__mro__:
            for name in cls.__dict__.get("__slots__", ()):
                if name in ("__dict__", "__weakref__"):
                    continue
                value = getattr(obj, name, _MISSING)
                self._slots.append((obj, name, value))
                if value is not _MISSING:
                    pending.append(value)
        if isinstance(obj, nn.Module):
            forward = getattr(type(obj), "forward", None)
            if isinstance(forward, types.FunctionType):
                pending.append(forward)

    # -- restoring ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Put back every saved object; finishes even through a KeyboardInterrupt."""
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                self._put_back()
                break
            except KeyboardInterrupt as exc:  # start again: every step is idempotent
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _put_back(self) -> None:
        for table, keys, values in self._dicts:
            if len(table) == len(keys) and _same(table.values(), values) and _same(table, keys):
                continue
            _guarded(_put_dict, table, keys, values)
        for seq, members in self._lists:
            if not _same(seq, members):
                _guarded(seq.__setitem__, slice(None), members)
        for bag, saved in self._sets:
            _guarded(_put_set, bag, saved)
        for queue, items in self._deques:
            if not _same(queue, items):
                _guarded(_put_deque, queue, items)
        for cell, value in self._cells:
            _guarded(_put_cell, cell, value)
        for obj, name, value in self._slots:
            _guarded(_put_attr, obj, name, value)
        for scope, name, value in self._names:
            _guarded(_put_dict_entry, scope, name, value)
        for tensor, version, copy in self._tensors:
            _guarded(_put_values, tensor, version, copy)


def _same(now: Iterable[Any], saved: list[Any]) -> bool:
    """The same objects in the same order (identity: `==` on tensors is elementwise)."""
    items = list(now)
    return len(items) == len(saved) and all(map(operator.is_, items, saved))


def _guarded(fn: Any, *args: Any) -> None:
    """One step of a restore: a container that refuses it must not stop the others."""
    try:
        fn(*args)
    except Exception:
        return


def _put_dict(table: dict[Any, Any], keys: list[Any], values: list[Any]) -> None:
    # The base class's own methods: a subclass may refuse them (a ModelOutput's __delitem__)
    # or do more (write attributes); OrderedDict's keep its order links.
    base: Any = collections.OrderedDict if isinstance(table, collections.OrderedDict) else dict
    if len(table) == len(keys) and _same(table, keys):
        for key, value, current in zip(keys, values, list(table.values()), strict=True):
            if current is not value:
                base.__setitem__(table, key, value)
        return
    base.clear(table)  # the keys changed: rebuild in the saved order (named_modules, state_dict)
    for key, value in zip(keys, values, strict=True):
        base.__setitem__(table, key, value)


def _put_dict_entry(table: dict[str, Any], name: str, value: Any) -> None:
    if value is _MISSING:
        table.pop(name, None)
    elif table.get(name, _MISSING) is not value:
        table[name] = value


def _put_set(bag: set[Any], members: set[Any]) -> None:
    bag.clear()
    bag.update(members)


def _put_deque(queue: collections.deque[Any], items: list[Any]) -> None:
    queue.clear()
    queue.extend(items)


def _put_cell(cell: types.CellType, value: Any) -> None:
    if value is _MISSING:
        with suppress(ValueError):
            del cell.cell_contents
    else:
        try:
            same = cell.cell_contents is value
        except ValueError:
            same = False
        if not same:
            cell.cell_contents = value


def _put_attr(obj: Any, name: str, value: Any) -> None:
    if value is _MISSING:
        if hasattr(obj, name):
            object.__delattr__(obj, name)
    elif getattr(obj, name, _MISSING) is not value:
        object.__setattr__(obj, name, value)


def _put_values(tensor: torch.Tensor, version: int, saved: torch.Tensor) -> None:
    # Kernels that update running statistics do not always bump the version counter.
    if tensor._version == version and tensor.shape == saved.shape and torch.equal(tensor, saved):
        return
    with torch.no_grad():
        if tensor.shape == saved.shape:
            tensor.copy_(saved)
        else:  # resized in place
            tensor.data = saved.clone()


@contextmanager
def isolated(*roots: Any, values: bool = False) -> Iterator[Snapshot]:
    """Save what is reachable from `roots`, run the block, put it all back."""
    snapshot = Snapshot(roots, values=values)
    try:
        yield snapshot
    finally:
        snapshot.restore()
