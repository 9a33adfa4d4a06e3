"""Isolation: save what a forward may write, and put back the very same objects afterwards.

A forward writes into more than its parameters: a cached rotary table or causal mask kept as
a plain attribute, a step counter, a submodule built on first use, a buffer it REASSIGNS
(`self.avg = 0.9 * self.avg + ...`), a hook it registers, the cache object it was given, the
dict a user's hook stores activations in. Copying saved values back into the live tensors
misses all of those, so a `Snapshot` records identities instead: for every mutable container
reachable from its roots (a module's `__dict__`, its `_parameters`, `_buffers`, `_modules` and
hook dicts, lists, dicts, sets, object attributes) it keeps the objects it holds, and
`restore()` puts those same objects back and drops anything added. State outside the roots
that their functions reach (the closures and named globals of hooks and forwards) is put back
only where it was left holding something the caller names (a dry run's fake tensors).

With `values=True` it also keeps a copy of every tensor that is not a parameter (buffers,
cached tensors, inputs) and copies it back into a tensor whose values changed in place
(BatchNorm's running statistics).

`restore()` finishes even when a KeyboardInterrupt arrives in the middle of it: it starts
again from the top (every step is idempotent) and re-raises the interrupt once all is back.
"""

from __future__ import annotations

import collections
import functools
import gc
import logging
import operator
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import torch
from torch import nn

_MISSING: Any = object()

# Values that cannot be written into, and that hold nothing that can.
_ATOMS = (type(None), bool, int, float, complex, str, bytes, range, slice, type(Ellipsis),
          torch.dtype, torch.device, torch.Size, torch.layout, torch.memory_format)  # fmt: skip

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
    # The logging tree: a forward's `logger` global leads through its manager to every
    # logger of the process (hundreds, with their handlers), which a forward only reads.
    logging.Logger,
    logging.PlaceHolder,
    logging.Manager,
)

_ATOM_TYPES = frozenset(_ATOMS)
_ORDERED = collections.OrderedDict

_LIMIT = 200_000  # objects walked at most: past that, deeper objects are left as they are


def _library_function(fn: types.FunctionType) -> bool:
    """torch's and this package's own functions: their globals are not the user's state."""
    module = getattr(fn, "__module__", None) or ""
    return module.split(".", 1)[0] in ("torch", "inspector")


class Snapshot:
    """Everything reachable from `roots` that a forward may write, saved by identity.

    Args:
        roots: modules, inputs, hooks; anything. Modules are walked through their `__dict__`
            (which holds `_parameters`, `_buffers`, `_modules` and the hook dicts). All of it
            is put back.
        values: also keep a copy of each non-parameter tensor, to copy back after an
            in-place update.
        leaked: where given, the state outside the roots that their functions reach (the
            closures and named globals of hooks and of the modules' forwards) is saved too,
            and each container there is put back only if it now holds a value for which
            `leaked(value)` is true (a dry run's fake or own tensor in a user's activation
            dict); the program's other bookkeeping there stays as it ran.
    """

    def __init__(
        self,
        roots: Iterable[Any],
        *,
        values: bool = False,
        leaked: Callable[[Any], bool] | None = None,
    ) -> None:
        self.values = values
        self.leaked = leaked
        self.truncated = False  # the walk stopped at _LIMIT objects
        self._inside = _Records()
        self._outside = _Records()
        self._seen: set[int] = set()
        self._keep: list[Any] = []  # objects made while walking stay alive (ids stay unique)
        outside: list[Any] = []
        with collector_paused():
            self._walk(list(roots), self._inside, outside)
            if leaked is not None:
                self._walk(outside, self._outside, outside)

    # -- saving ------------------------------------------------------------------------------

    def _walk(self, pending: list[Any], records: _Records, outside: list[Any]) -> None:
        seen, keep, dicts, empty = self._seen, self._keep, records.dicts, records.empty
        while pending:
            obj = pending.pop()
            kind = type(obj)
            if kind in _ATOM_TYPES or id(obj) in seen:
                continue
            if len(seen) >= _LIMIT:
                self.truncated = True
                return
            if kind is dict or kind is _ORDERED:  # most of a model: its modules' tables
                seen.add(id(obj))
                keep.append(obj)
                if obj:
                    values = list(obj.values())
                    dicts.append((obj, list(obj), values))
                    pending.extend(values)
                else:  # most of those: hook tables, an OrderedDict's attributes
                    empty.append(obj)
                if kind is _ORDERED:  # an OrderedDict takes attributes
                    pending.append(vars(obj))
                continue
            if kind is set:  # a module's _non_persistent_buffers_set
                seen.add(id(obj))
                keep.append(obj)
                records.sets.append((obj, set(obj)))
                continue
            if isinstance(obj, _ATOMS):
                continue
            seen.add(id(obj))
            keep.append(obj)
            if isinstance(obj, torch.Tensor):
                if records is self._inside:
                    self._tensor(obj)
            elif isinstance(obj, _OPAQUE):
                continue
            elif isinstance(obj, dict):
                values = list(obj.values())
                records.dicts.append((obj, list(obj), values))
                pending.extend(values)
                if hasattr(obj, "__dict__"):  # a dict subclass with attributes
                    pending.append(vars(obj))
            elif isinstance(obj, list):
                records.lists.append((obj, list(obj)))
                pending.extend(obj)
            elif isinstance(obj, (tuple, frozenset)):
                pending.extend(obj)
            elif isinstance(obj, set):
                records.sets.append((obj, set(obj)))
            elif isinstance(obj, collections.deque):
                records.deques.append((obj, list(obj)))
                pending.extend(obj)
            elif isinstance(obj, types.FunctionType):
                self._function(obj, self._outside, outside)
            elif isinstance(obj, types.MethodType):
                pending.append(obj.__self__)
                outside.append(obj.__func__)
            elif isinstance(obj, functools.partial):
                pending.extend((obj.args, obj.keywords))
                outside.append(obj.func)
            else:
                self._object(obj, records, pending, outside)

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

    @property
    def _tensors(self) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
        return self._inside.tensors

    def _function(self, fn: types.FunctionType, records: _Records, pending: list[Any]) -> None:
        if self.leaked is None:
            return  # state outside the roots is not saved
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                value = _MISSING
            records.cells.append((cell, value))
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
            records.names.append((scope, name, value))
            if value is not _MISSING:
                pending.append(value)

    def _object(self, obj: Any, records: _Records, pending: list[Any], outside: list[Any]) -> None:
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            pending.append(state)
        for cls in type(obj).__mro__:
            for name in cls.__dict__.get("__slots__", ()):
                if name in ("__dict__", "__weakref__"):
                    continue
                value = getattr(obj, name, _MISSING)
                records.slots.append((obj, name, value))
                if value is not _MISSING:
                    pending.append(value)
        if isinstance(obj, torch.jit.ScriptModule):
            self._script_buffers(obj, records)
        elif isinstance(obj, nn.Module):
            forward = getattr(type(obj), "forward", None)
            if isinstance(forward, types.FunctionType):
                outside.append(forward)

    def _script_buffers(self, module: torch.jit.ScriptModule, records: _Records) -> None:
        """A TorchScript module's tensors live in C++, beyond the walk: its buffers (running
        statistics, counters) are copied whatever `values` says, to be copied back."""
        try:
            with torch.no_grad():
                for buffer in module.buffers():
                    records.tensors.append((buffer, buffer._version, buffer.detach().clone()))
        except Exception:
            pass

    # -- restoring ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Put back every saved object; finishes even through a KeyboardInterrupt."""
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                self._inside.put_back(None)
                if self.leaked is not None:
                    self._outside.put_back(self.leaked)
                break
            except KeyboardInterrupt as exc:  # start again: every step is idempotent
                interrupted = exc
        if interrupted is not None:
            raise interrupted


class _Records:
    """Saved contents of containers, by kind."""

    def __init__(self) -> None:
        self.dicts: list[tuple[dict[Any, Any], list[Any], list[Any]]] = []
        self.empty: list[dict[Any, Any]] = []  # dicts and OrderedDicts (not subclasses), empty
        self.lists: list[tuple[list[Any], list[Any]]] = []
        self.sets: list[tuple[set[Any], set[Any]]] = []
        self.deques: list[tuple[collections.deque[Any], list[Any]]] = []
        self.cells: list[tuple[types.CellType, Any]] = []
        self.slots: list[tuple[Any, str, Any]] = []
        self.names: list[tuple[dict[str, Any], str, Any]] = []  # globals a function names
        self.tensors: list[tuple[torch.Tensor, int, torch.Tensor]] = []

    def put_back(self, only: Callable[[Any], bool] | None) -> None:
        """Put back every container, or with `only`, those now holding such a value."""

        def holds(*values: Any) -> bool:
            return only is None or any(_holds(v, only) for v in values)

        is_ = operator.is_
        for table, keys, values in self.dicts:
            if (
                len(table) == len(keys)
                and all(map(is_, table.values(), values))
                and all(map(is_, table, keys))
            ):
                continue  # unchanged (the lengths match, so the views can be walked live)
            if holds(*table.values()):
                _guarded(_put_dict, table, keys, values)
        for table in self.empty:
            if table and holds(*table.values()):
                table.clear()
        for seq, members in self.lists:
            if not _same(seq, members) and holds(*seq):
                _guarded(seq.__setitem__, slice(None), members)
        for bag, saved in self.sets:
            if holds(*bag):
                _guarded(_put_set, bag, saved)
        for queue, items in self.deques:
            if not _same(queue, items) and holds(*queue):
                _guarded(_put_deque, queue, items)
        for cell, value in self.cells:
            if holds(_cell_value(cell)):
                _guarded(_put_cell, cell, value)
        for obj, name, value in self.slots:
            if holds(getattr(obj, name, None)):
                _guarded(_put_attr, obj, name, value)
        for scope, name, value in self.names:
            now = scope.get(name, _MISSING)
            if now is not value and holds(None if now is _MISSING else now):
                _guarded(_put_dict_entry, scope, name, value)
        for tensor, version, copy in self.tensors:
            _guarded(_put_values, tensor, version, copy)


def _holds(value: Any, leaked: Callable[[Any], bool]) -> bool:
    """`value` is leaked, or a list, tuple or dict right around one."""
    if leaked(value):
        return True
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and any(leaked(v) for v in value)


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return None


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
    if len(bag) == len(members) and {id(m) for m in bag} == {id(m) for m in members}:
        return  # the very same members
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
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, then on again if it was on: a walk makes a
    record for each of tens of thousands of containers and no garbage, and each collection
    those allocations would trigger scans the whole heap (0.17 s of a 0.2 s walk over a 70B
    model's 1,000 modules)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def isolated(
    *roots: Any, values: bool = False, leaked: Callable[[Any], bool] | None = None
) -> Iterator[Snapshot]:
    """Save what is reachable from `roots`, run the block, put it all back."""
    snapshot = Snapshot(roots, values=values, leaked=leaked)
    try:
        yield snapshot
    finally:
        snapshot.restore()
