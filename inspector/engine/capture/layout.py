"""What attaching to a model works out once and can reuse at the next trace of the same model.

Attaching walks the model three times (paths, the modules that take hooks, each module's
facts: parameter count, type name, path, whether its units are looked at). Traced again
unchanged, the model gives the same answers, so from its second attach on they are kept per
root module (weakly: the cache keeps no module alive) and checked before use: every module
still alive, of the same type, not compiled since, with the same children under the same
names and the same parameters (by name and identity, with the same number of elements).
Anything else, and the walk is done again. A module's line (`extra_repr`) is kept only where
it is known to rest on the module's own immutable attributes, checked by identity
(`_line_key`); else it is asked anew.

Only the plain case is kept: no TorchScript, compiled or lazy module below the root (those
are described as they run, or at their boundary), and a recorder attaching its first root.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from inspector.engine.capture.naming import module_line

_UNINITIALIZED = nn.parameter.UninitializedParameter

# id(root) -> its layout; checked against the layout's weak reference (an id is given again
# once its object is gone). Bounded: cleared when it grows past this many roots.
_LAYOUTS: dict[int, Layout] = {}
_MAX_LAYOUTS = 64


class Layout:
    """One root's hookable modules in hook order, each with what it was when walked."""

    __slots__ = ("entries", "name", "root")

    def __init__(self, root: nn.Module, name: str, entries: list[tuple[Any, ...]] | None) -> None:
        self.root = weakref.ref(root)
        self.name = name
        # (weak reference, type, path, children, parameters, params, type name, unit,
        #  what the line rests on or None, the line): children and parameters as `_children`
        #  and `_parameters` take them, the line's key as `_line_key`. None: attached once,
        #  nothing kept yet.
        self.entries = entries

    def modules(self) -> list[nn.Module] | None:
        """The modules to hook, in order, when nothing below the root changed; else None
        (also when a check cannot be made: the walk then runs as for a new model)."""
        if self.entries is None:
            return None
        try:
            return self._unchanged(self.entries)
        except Exception:
            return None

    def _unchanged(self, entries: list[tuple[Any, ...]]) -> list[nn.Module] | None:
        modules: list[nn.Module] = []
        append = modules.append
        for ref, kind, _, children, params, *_ in entries:
            module = ref()
            if module is None or type(module) is not kind:
                return None
            stored = module.__dict__
            if stored.get("_compiled_call_impl") is not None:
                return None
            if _children(stored["_modules"]) != children:
                return None
            if _parameters(stored["_parameters"]) != params:
                return None
            append(module)
        return modules


def _children(table: dict[str, Any]) -> tuple[Any, ...]:
    return (*table, *map(id, table.values()))


def _parameters(table: dict[str, Any]) -> tuple[Any, ...]:
    # Names too (a line may ask whether `bias` is None); a Parameter's shape can change in
    # place (`p.data = ...`): its size is part of it.
    return (*table, *[(id(p), p.numel()) for p in table.values() if p is not None])


# A module's line is `Type(extra_repr())`. It is kept only where `extra_repr` is known to read
# nothing but the module's own attributes and whether a parameter is None (torch's own, below;
# the parameters are checked with the layout), and those attributes hold immutable values:
# then the same attribute objects give the same line. Module's own `extra_repr` says "".
_PLAIN_EXTRA = nn.Module.extra_repr
_KNOWN_EXTRA = frozenset(
    [
        kind.extra_repr
        for kind in (
            nn.Linear, nn.LayerNorm, nn.GroupNorm, nn.GELU, nn.ReLU, nn.SiLU, nn.LeakyReLU,
            nn.Softmax, nn.Dropout, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d,
            nn.BatchNorm2d, nn.BatchNorm3d, nn.Embedding, nn.MaxPool2d, nn.AvgPool2d,
            nn.AdaptiveAvgPool2d, nn.Flatten,
        )
    ]
)  # fmt: skip
_TABLES = frozenset(vars(nn.Module()))  # every module's own tables and flags
_IMMUTABLE = (type(None), bool, int, float, str, torch.dtype, torch.Size)
_MISSING = object()


def _immutable(value: Any) -> bool:
    if isinstance(value, tuple):
        return type(value) in (tuple, torch.Size) and all(map(_immutable, value))
    return type(value) in _IMMUTABLE


def _line_key(module: nn.Module) -> tuple[Any, ...] | None:
    """What the line of `module` rests on, to keep it with; None: ask it each time."""
    stored = module.__dict__
    extra = type(module).extra_repr
    if "extra_repr" in stored:
        return None
    if extra is _PLAIN_EXTRA:
        return (extra, None, ())
    if extra not in _KNOWN_EXTRA:
        return None
    attrs = []
    for key, value in stored.items():
        if key in _TABLES:
            continue
        if type(key) is not str or not _immutable(value):
            return None
        attrs.append((key, value))
    return (extra, len(stored), tuple(attrs))


def _same_line(module: nn.Module, key: tuple[Any, ...]) -> bool:
    extra, size, attrs = key
    if type(module).extra_repr is not extra:
        return False
    stored = module.__dict__
    if size is None:
        return "extra_repr" not in stored
    if len(stored) != size:
        return False
    return all(stored.get(name, _MISSING) is value for name, value in attrs)


def cached(root: nn.Module, name: str) -> Layout | None:
    layout = _LAYOUTS.get(id(root))
    if layout is None or layout.root() is not root or layout.name != name:
        return None
    return layout


def remember(
    root: nn.Module,
    name: str,
    hooked: list[nn.Module],
    known: dict[int, tuple[Any, ...]],
    opaque: bool,
) -> None:
    """Keep the layout of `root` just attached: `hooked` in hook order (every module of the
    tree when not `opaque`), `known` the facts learned (id -> (weak reference, line, params,
    type name, path, unit)). A root attached for the first time is only noted (a model
    traced once pays nothing more); the walks are kept when it comes again. Nothing is kept
    unless every module is plain and has final facts with a path."""
    kept = cached(root, name)
    if kept is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[id(root)] = Layout(root, name, None)
        return
    kept.entries = None
    if opaque or not hooked or hooked[0] is not root:
        return
    kept.entries = entries_of(hooked, known)


def of_modules(hooked: list[nn.Module], known: dict[int, tuple[Any, ...]]) -> Layout | None:
    """The layout of exactly these modules (a session's, kept from one pass to the next: not
    in the table of roots), or None when it cannot be kept (see `remember`)."""
    if not hooked:
        return None
    entries = entries_of(hooked, known)
    return None if entries is None else Layout(hooked[0], "", entries)


def entries_of(
    hooked: list[nn.Module], known: dict[int, tuple[Any, ...]]
) -> list[tuple[Any, ...]] | None:
    """Each module's entry of a layout, from the facts learned; None unless every module is
    plain and has final facts with a path."""
    entries: list[tuple[Any, ...]] = []
    for module in hooked:
        facts = known.get(id(module))
        if facts is None or facts[0]() is not module or facts[4] is None:
            return None
        if isinstance(module, LazyModuleMixin):
            return None
        stored = module.__dict__
        if stored.get("_compiled_call_impl") is not None:
            return None
        table = stored["_parameters"]
        for p in table.values():
            if type(p) is not nn.Parameter and isinstance(p, _UNINITIALIZED):
                return None
        entries.append(
            (
                facts[0], type(module), facts[4], _children(stored["_modules"]),
                _parameters(table), facts[2], facts[3], facts[5], _line_key(module), facts[1],
            )
        )  # fmt: skip
    return entries


def apply(
    layout: Layout,
    modules: list[nn.Module],
    by_id: dict[int, tuple[Any, str]],
    known: dict[int, tuple[Any, ...]],
) -> None:
    """Fill a fresh recorder's path table and facts from `layout` (each line asked anew)."""
    assert layout.entries is not None  # `modules` came from it
    for module, (ref, _, path, _, _, params, type_name, unit, line_key, line) in zip(
        modules, layout.entries, strict=True
    ):
        if line_key is None or not _same_line(module, line_key):
            line = module_line(module)
        by_id[id(module)] = (ref, path)
        known[id(module)] = (ref, line, params, type_name, path, unit)
