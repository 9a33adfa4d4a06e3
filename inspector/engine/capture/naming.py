"""Names of modules and places in the user's code.

With a model in hand, a module's name is its path in `model.named_modules()`. With global
hooks (no model given), a module entered with nothing on the stack is a root, named after the
variable that holds it in the user's calling frame (`model`, `criterion`), and its submodules
are indexed once under that name.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import sysconfig
import weakref
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from inspector.engine.capture.activity import UNIT_TYPES
from inspector.engine.capture.hooks import opaque_kind
from inspector.engine.records import SourceLine

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_INSPECTOR_DIR = str(Path(__file__).resolve().parents[2]) + os.sep  # the package, inspector/
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + os.sep
_UNINITIALIZED = nn.parameter.UninitializedParameter


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """Frames of torch, of the inspector or of the standard library (threading, runpy): never
    the user's line. Third-party packages (a model zoo) count as user code."""
    return (
        filename.startswith(_TORCH_DIR)
        or filename.startswith(_INSPECTOR_DIR)
        or (filename.startswith(_STDLIB_DIR) and "-packages" not in filename)
        or filename.startswith("<frozen ")
    )


# Keyed by id: hashing a code object hashes its bytecode and constants (1 us for one of
# torch's, per frame per module call). The code object is kept, so its id is not reused.
_LIBRARY_CODE: dict[int, tuple[CodeType, bool]] = {}


def user_frame(start: FrameType | None) -> FrameType | None:
    """The first frame at or above `start` that is the user's code."""
    frame = start
    while frame is not None:
        code = frame.f_code
        known = _LIBRARY_CODE.get(id(code))
        if known is not None and known[0] is code:
            library = known[1]
        else:
            if len(_LIBRARY_CODE) > 16384:
                _LIBRARY_CODE.clear()
            library = is_library_file(code.co_filename)
            _LIBRARY_CODE[id(code)] = (code, library)
        if not library:
            return frame
        frame = frame.f_back
    return None


def source_line(filename: str, lineno: int, function: str = "") -> SourceLine:
    text = linecache.getline(filename, lineno).rstrip("\n")
    return SourceLine(file=filename, lineno=lineno, text=text, function=function)


def frame_line(frame: FrameType) -> SourceLine:
    return source_line(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


_SITES: dict[tuple[int, int], tuple[CodeType, SourceLine]] = {}


def call_site(skip: int = 0) -> SourceLine | None:
    """The user's line that made the module call now being entered (remembered by code
    object and line: a loop makes the same call many times). The search starts at the
    caller's frame, or `skip` frames above it when those are known to be the library's."""
    return site_of(sys._getframe(1 + skip))


def site_of(frame: FrameType) -> SourceLine | None:
    """The user's line at or above `frame`, remembered as `call_site` does (a hook passes the
    frame of the module call it is in, which it has at hand)."""
    # user_frame(frame), written out (one frame less in a hook, once per module call)
    found = frame
    library_code = _LIBRARY_CODE
    while True:
        code = found.f_code
        known_code = library_code.get(id(code))
        if known_code is None or known_code[0] is not code:  # not seen before: ask it
            user = user_frame(found)
            if user is None:
                return None
            found, code = user, user.f_code
            break
        if not known_code[1]:
            break
        back = found.f_back
        if back is None:
            return None
        found = back
    key = (id(code), found.f_lineno)
    known = _SITES.get(key)
    if known is not None and known[0] is code:
        return known[1]
    if len(_SITES) > 16384:
        _SITES.clear()
    line = frame_line(found)
    _SITES[key] = (code, line)
    return line


def module_line(module: nn.Module) -> str:
    """The module's own line: `Linear(in_features=1024, out_features=256, bias=True)`."""
    try:
        extra = module.extra_repr()
    except Exception:  # a user's extra_repr may fail; the name is still useful
        extra = ""
    if "\n" in extra:
        extra = extra.split("\n", 1)[0] + ", ..."
    return f"{type(module).__name__}({extra})"


class ParamCounter:
    """Parameters of a module and its children, each Parameter counted once (tied weights).

    Each module's set of parameters is built from its children's, once: counting every
    module of a model costs one walk, not one walk per module. A lazy parameter (no shape
    before the module's first call) is left out and its subtree is counted again next time.
    """

    def __init__(self) -> None:
        self._ids: dict[int, frozenset[int]] = {}
        self._sizes: dict[int, int] = {}
        self._totals: dict[int, int] = {}

    def count(self, module: nn.Module) -> tuple[int, bool]:
        """(the number of parameters, False while a lazy one among them has no shape yet)."""
        total = self._totals.get(id(module))
        if total is not None:
            return total, True
        if self._add_up(module):
            total = self._totals.get(id(module))
            if total is not None:
                return total, True
        ids, complete = self._param_ids(module)
        sizes = self._sizes
        total = sum([sizes[i] for i in ids])
        if complete:
            self._totals[id(module)] = total
        return total, complete

    def _add_up(self, root: nn.Module) -> bool:
        """Every module's total under `root` as its own parameters plus its children's
        totals, in one walk: exact where no Parameter and no module appears twice below
        `root` (no tied weights), which the walk checks; False (nothing kept) otherwise."""
        order: list[nn.Module] = []
        todo = [root]
        modules: set[int] = set()
        params: set[int] = set()
        own: dict[int, int] = {}
        lazy: set[int] = set()
        while todo:
            module = todo.pop()
            if id(module) in modules:
                return False  # a module reached twice: its parameters count once
            modules.add(id(module))
            order.append(module)
            size = 0
            for p in module._parameters.values():
                if p is None:
                    continue
                if type(p) is not nn.Parameter and isinstance(p, _UNINITIALIZED):
                    lazy.add(id(module))
                    continue
                if id(p) in params:
                    return False  # tied weights
                params.add(id(p))
                size += p.numel()
            own[id(module)] = size
            todo.extend([c for c in module._modules.values() if c is not None])
        totals = self._totals
        done: dict[int, tuple[int, bool]] = {}
        for module in reversed(order):  # children before their parents
            total, complete = own[id(module)], id(module) not in lazy
            for child in module._modules.values():
                if child is not None:
                    sub, sub_complete = done[id(child)]
                    total += sub
                    complete = complete and sub_complete
            done[id(module)] = (total, complete)
            if complete:
                totals[id(module)] = total
        return True

    def _param_ids(self, module: nn.Module) -> tuple[frozenset[int], bool]:
        found = self._ids.get(id(module))
        if found is not None:
            return found, True
        own: set[int] = set()
        complete = True
        for p in module._parameters.values():
            if p is None:
                continue
            # a plain Parameter first: isinstance against UninitializedParameter goes
            # through torch's metaclass check (0.3 us per parameter)
            if type(p) is not nn.Parameter and isinstance(p, _UNINITIALIZED):
                complete = False
                continue
            own.add(id(p))
            self._sizes[id(p)] = p.numel()
        for child in module._modules.values():
            if child is not None:
                ids, done = self._param_ids(child)
                own |= ids
                complete = complete and done
        found = frozenset(own)
        if complete:
            self._ids[id(module)] = found
        return found, complete


class ModuleFacts:
    """What a call record says of its module, worked out once per module per pass (`forget`
    starts over): a weak reference to it, its line, its parameter count, its type name, its
    path and whether its units are looked at (an activation).

    `known` maps id(module) to those six, for the hooks to read with one lookup (check the
    weak reference: an id is given again once its object is gone).
    """

    def __init__(self, names: ModuleNames | None = None) -> None:
        self.known: dict[int, tuple[weakref.ref[Any], str, int, str, str | None, bool]] = {}
        self._params = ParamCounter()
        self._names = names

    def of(self, key: Any) -> tuple[weakref.ref[Any], str, int, bool, str]:
        """(a weak reference, the line, the parameter count, whether that count is final,
        the type name) of a module or a function; the count is not final while a lazy
        parameter below the module has no shape yet."""
        known = self.known.get(id(key))
        if known is not None and known[0]() is key:
            return known[0], known[1], known[2], True, known[3]
        entry, final = self.entry(key, None)
        return entry[0], entry[1], entry[2], final, entry[3]

    def entry(
        self, key: Any, parent_path: str | None, path: str | None = None
    ) -> tuple[tuple[weakref.ref[Any], str, int, str, str | None, bool], bool]:
        """The six facts of `key` (its path as a call inside `parent_path`, unless given;
        None for a function, whose caller names it), and whether they are final."""
        if isinstance(key, nn.Module):
            opaque = opaque_kind(key)
            if opaque is None:
                type_name, line = type(key).__name__, module_line(key)
            else:
                type_name = original_type(key)
                line = f"{type_name} ({opaque}: its inside is not recorded)"
            params, final = self._params.count(key)
            names = self._names
            if path is None and names is not None:
                path = names.path(key, parent_path)
        else:
            line, params, final = function_name(key), 0, True
            type_name = line
        entry = (_weak(key), line, params, type_name, path, type(key).__name__ in UNIT_TYPES)
        if final:
            self.known[id(key)] = entry
        return entry, final

    def learn(self, modules: list[nn.Module]) -> None:
        """Describe these modules now (warm, in one loop) rather than at their first call,
        in a hook that runs right after an op has pushed Python's data out of the caches
        (3-5x slower there). A lazy module is described when it runs, once its parameters
        exist, and a module without a path yet (named at its first call) then too; anything
        that fails here is tried again then."""
        names = self._names
        try:
            for module in modules:
                if isinstance(module, LazyModuleMixin):
                    continue
                path = names.known(module) if names is not None else None
                if names is not None and path is None:
                    continue
                self.entry(module, None, path)
        except Exception:
            pass

    def forget(self) -> None:
        """A new pass: a module replaced since (or a parameter swapped) is described anew."""
        self.known.clear()
        self._params = ParamCounter()


def function_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def original_type(module: nn.Module) -> str:
    """The class a torch.compile wrapper or a ScriptModule stands for."""
    inner = getattr(module, "_orig_mod", None)
    if inner is not None:
        return type(inner).__name__
    name = getattr(module, "original_name", None)  # a ScriptModule's Python class
    return name if isinstance(name, str) and name else type(module).__name__


class _Dead:
    def __call__(self) -> None:
        return None


def _weak(obj: Any) -> weakref.ref[Any]:
    try:
        return weakref.ref(obj)
    except TypeError:
        return _Dead()  # type: ignore[return-value]


class ModuleNames:
    """Paths of modules; roots named from the model given or from the caller's variables."""

    def __init__(self) -> None:
        # id -> (weak reference, path): checked against the reference (an id is given again
        # once its module is gone); dead entries are swept when the table has doubled. One
        # lookup per call, no weak reference made to ask (as a WeakKeyDictionary does).
        self._by_id: dict[int, tuple[weakref.ref[nn.Module], str]] = {}
        self._sweep_at = 1024
        self._roots: dict[str, weakref.ref[nn.Module]] = {}

    def add_root(self, module: nn.Module, name: str) -> None:
        """Index `module` and its submodules under `name` ("" for the model being traced)."""
        self._roots[name] = weakref.ref(module)
        known = self.known
        for sub_path, sub in module.named_modules():
            if known(sub) is not None:
                continue
            if not name:
                self._name(sub, sub_path)
            else:
                self._name(sub, f"{name}.{sub_path}" if sub_path else name)

    def known(self, module: nn.Module) -> str | None:
        entry = self._by_id.get(id(module))
        return entry[1] if entry is not None and entry[0]() is module else None

    def _name(self, module: nn.Module, path: str) -> None:
        table = self._by_id
        table[id(module)] = (weakref.ref(module), path)
        if len(table) > self._sweep_at:
            for key in [key for key, entry in table.items() if entry[0]() is None]:
                del table[key]
            self._sweep_at = max(1024, 2 * len(table))

    def path(self, module: nn.Module, parent_path: str | None) -> str:
        """The path of `module`, entered inside `parent_path` (None when nothing is running);
        a path never changes once given."""
        entry = self._by_id.get(id(module))
        if entry is not None and entry[0]() is module:
            return entry[1]
        if parent_path is not None:
            # Called inside another module but not registered under it (a module kept in a
            # plain list or made on the fly): name it under its caller.
            prefix = f"{parent_path}." if parent_path else ""
            path = f"{prefix}<{type(module).__name__}>"
            self._name(module, path)
            return path
        name = self._unique(variable_name(module) or type(module).__name__.lower(), module)
        self.add_root(module, name)
        return name

    def _unique(self, name: str, module: nn.Module) -> str:
        candidate, n = name, 1
        while True:
            ref = self._roots.get(candidate)
            if ref is None or ref() is None or ref() is module:
                return candidate
            n += 1
            candidate = f"{name}#{n}"


def variable_name(obj: object) -> str | None:
    """The name a user's frame gives `obj`: a local, a global, or an attribute of `self`."""
    frame = user_frame(sys._getframe(1))
    hops = 0
    while frame is not None and hops < 8:
        if not is_library_file(frame.f_code.co_filename):
            for scope in (frame.f_locals, frame.f_globals):
                for name, value in scope.items():
                    if value is obj and not name.startswith("_"):
                        return name
            owner = frame.f_locals.get("self")
            if owner is not None and not isinstance(owner, nn.Module):
                for name, value in getattr(owner, "__dict__", {}).items():
                    if value is obj:
                        return name
        frame = frame.f_back
        hops += 1
    return None
