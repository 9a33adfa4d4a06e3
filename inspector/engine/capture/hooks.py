"""The one owner of every forward hook the inspector puts on modules.

Three promises rest here:

- Nothing half-registered: a hook's flags (with kwargs, always called) go into torch's tables
  before the hook itself, and out after it, so torch never sees one without the other.
- Nothing left behind: each entry is noted (table, flags, key) before it goes into torch's
  table, so a Ctrl+C anywhere in registering loses nothing; removal pops exactly those keys
  (everyone else's hooks stay), is idempotent, and starts again when a KeyboardInterrupt lands
  in the middle of it; the interrupt is raised once the tables are clean.
- Nothing hooked that cannot take a hook: TorchScript modules refuse hooks, and the inside of a
  torch.compile'd module is compiled code. Both are recorded at their boundary only: the
  ScriptModule's calls through a process-wide hook filtered to those modules, the compiled
  module through its own hooks (its `_orig_mod` subtree stays untouched). A module compiled
  in place (`module.compile()`) runs its hooks inside the compiled code: it is left alone.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.utils.hooks import RemovableHandle

from inspector.engine.capture.interrupts import DeferredInterrupts

__all__ = ["DeferredInterrupts"]  # it lived here: callers import it from here

Hook = Callable[..., None]

_MUTE = threading.local()
_EVERYTHING: weakref.WeakSet[Any] = weakref.WeakSet()  # hook sets recording every module call


def recording_everything() -> bool:
    """Whether a session or a script run of the inspector hooks every module call now."""
    return bool(_EVERYTHING)


class muted:  # lower case: used like a function, `with muted():`
    """The inspector's own work in this thread (a listener, an explanation, the extra passes
    of contributions): module calls made inside are not recorded by any of its hooks.

    Mute belongs to the frame that entered it: once that frame is gone it no longer counts,
    so an interrupt between entering and leaving can never mute a thread for good.
    """

    def __enter__(self) -> None:
        frames = _MUTE.__dict__.setdefault("frames", [])
        frames.append(sys._getframe(1))

    def __exit__(self, *exc: object) -> None:
        frames = _MUTE.__dict__.get("frames")
        if frames:
            frames.pop()


def is_muted() -> bool:
    frames = _MUTE.__dict__.get("frames")
    if not frames:
        return False
    here = sys._getframe(1)
    while frames:
        if runs_below(here, frames[-1]):
            return True
        frames.pop()  # its frame is gone: what it muted is over
    return False


def runs_below(frame: Any, ancestor: Any) -> bool:
    """Whether `ancestor` is on the stack above `frame` (its code is still running)."""
    while frame is not None:
        if frame is ancestor:
            return True
        frame = frame.f_back
    return False


def until_done(cleanup: Callable[[], None]) -> None:
    """Run an idempotent `cleanup` to its end: a KeyboardInterrupt landing inside starts it
    again, and is raised once it has finished (the user's Ctrl+C is kept, not lost)."""
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            cleanup()
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def is_scripted(module: nn.Module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


def is_compiled(module: nn.Module) -> bool:
    """A torch.compile wrapper (OptimizedModule), or a module compiled in place."""
    if getattr(module, "_compiled_call_impl", None) is not None:
        return True
    # `hasattr(module, "_orig_mod")`, without the AttributeError that Module.__getattr__
    # raises for nearly every module (1.2 us each, twice per module as the hooks go on).
    stored = module.__dict__
    if "_orig_mod" in stored:
        return True
    kind = type(module)
    declared = _DECLARES_ORIG_MOD.get(kind)
    if declared is None:
        if len(_DECLARES_ORIG_MOD) > 4096:
            _DECLARES_ORIG_MOD.clear()
        declared = _DECLARES_ORIG_MOD[kind] = hasattr(kind, "_orig_mod")
    if declared:  # a property or a class attribute: ask it
        return hasattr(module, "_orig_mod")
    return (
        "_orig_mod" in stored.get("_modules", _NOTHING)
        or "_orig_mod" in stored.get("_parameters", _NOTHING)
        or "_orig_mod" in stored.get("_buffers", _NOTHING)
    )


_DECLARES_ORIG_MOD: dict[type, bool] = {}  # module classes that define `_orig_mod` themselves
_NOTHING: dict[str, Any] = {}


def opaque_kind(module: Any) -> str | None:
    """ "TorchScript" or "torch.compile" for a module whose inside hooks cannot see."""
    if isinstance(module, nn.Module):
        if is_scripted(module):
            return "TorchScript"
        if is_compiled(module):
            return "torch.compile"
    return None


def hookable(root: nn.Module, opaque: list[nn.Module] | None = None) -> Iterator[nn.Module]:
    """The modules of `root` that take hooks: not inside a ScriptModule or a compiled module
    (those are noted in `opaque` when given)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        module = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        if is_scripted(module) or is_compiled(module):
            if opaque is not None:
                opaque.append(module)
            continue  # its inside is not Python module calls
        todo.extend([m for m in reversed(module._modules.values()) if m is not None])


class HookSet:
    """Forward pre and post hooks on modules, or process-wide; removed only by `remove()`.

    `pre(module, args, kwargs)` and `post(module, args, kwargs, output)` are called for every
    module call (post also while an exception unwinds: output None). Process-wide hooks are
    called the same way.
    """

    def __init__(self, pre: Hook, post: Hook) -> None:
        self._pre = pre
        self._post = post
        self._global_pre = self._make_global_pre()
        self._global_post = self._make_global_post()
        self._touched: list[nn.Module] = []
        self._entries: list[tuple[dict[int, Any], tuple[dict[int, bool], ...], int]] = []
        self._global = False
        self._only: set[int] | None = None  # process-wide hooks filtered to these modules
        # The last `add` met a module whose inside is not hooked (TorchScript, compiled).
        self.opaque = False

    # -- registration --------------------------------------------------------------------------

    def add(self, root: nn.Module) -> list[nn.Module]:
        """Hook `root` and its submodules; returns the modules hooked. ScriptModules found
        below are recorded at their boundary through a filtered process-wide hook."""
        hooked: list[nn.Module] = []
        scripted: list[nn.Module] = []
        opaque: list[nn.Module] = []
        for module in hookable(root, opaque):
            if getattr(module, "_compiled_call_impl", None) is not None:
                continue  # compiled in place: its hooks would run inside the compiled code
            if is_scripted(module):
                scripted.append(module)
                continue
            self._hook(module)
            hooked.append(module)
        self.opaque = bool(opaque)
        if scripted:
            if self._only is None:
                self._only = set()
            self._only.update(id(m) for m in scripted)
            self._add_global()
        return hooked

    def add_modules(self, modules: list[nn.Module]) -> None:
        """Hook exactly these modules, as `add` found them under a root before (none of them
        a ScriptModule or compiled: the caller checked)."""
        for module in modules:
            self._hook(module)

    def _hook(self, module: nn.Module) -> None:
        self._touched.append(module)
        self._put(module._forward_pre_hooks, (module._forward_pre_hooks_with_kwargs,), self._pre)
        self._put(
            module._forward_hooks,
            (module._forward_hooks_with_kwargs, module._forward_hooks_always_called),
            self._post,
        )

    def add_global(self) -> None:
        """Hook every module call in the process."""
        self._only = None
        self._add_global()

    def _add_global(self) -> None:
        if self._global:
            return
        self._global = True
        if self._only is None:
            _EVERYTHING.add(self)
        self._put(torch_module._global_forward_pre_hooks, (), self._global_pre)
        self._put(
            torch_module._global_forward_hooks,
            (
                torch_module._global_forward_hooks_with_kwargs,
                torch_module._global_forward_hooks_always_called,
            ),
            self._global_post,
        )

    def _make_global_pre(self) -> Hook:
        pre = self._pre

        def global_pre(module: nn.Module, args: tuple[Any, ...]) -> None:
            if torch.compiler.is_compiling():  # inside compiled code: not a module call
                return
            only = self._only
            if only is not None and id(module) not in only:
                return
            pre(module, args, {})

        return global_pre

    def _make_global_post(self) -> Hook:
        post = self._post

        def global_post(module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
            if torch.compiler.is_compiling():
                return
            only = self._only
            if only is not None and id(module) not in only:
                return
            # torch calls always-called hooks without kwargs when forward raised
            kwargs, output = (rest[0], rest[1]) if len(rest) == 2 else ({}, rest[0])
            post(module, args, kwargs, output)

        return global_post

    @property
    def attached(self) -> bool:
        return self._global or bool(self._touched)

    @property
    def hooked(self) -> list[nn.Module] | None:
        """The modules hooked, in order, when they are all the set hooks (no process-wide
        hook, nothing recorded at its boundary only); else None."""
        if self._global or self.opaque or not self._touched:
            return None
        return self._touched

    @property
    def global_pre_code(self) -> Any:
        """The code of the process-wide pre hook (a recorder looks past its frame)."""
        return self._global_pre.__code__

    # -- removal -------------------------------------------------------------------------------

    def remove(self) -> None:
        """Take off every hook this set added, and only those. Safe to call twice.

        A KeyboardInterrupt landing here restarts the (idempotent) removal and is raised once
        it is done; the user's interrupt is never lost and never leaves a hook behind.
        """
        until_done(self._remove_all)

    def _remove_all(self) -> None:
        _EVERYTHING.discard(self)
        entries = self._entries
        while entries:
            table, flags, key = entries[-1]
            table.pop(key, None)  # first the hook: torch stops calling it
            for flag in flags:
                flag.pop(key, None)
            entries.pop()
        self._global = False
        self._touched.clear()

    def _put(self, table: dict[int, Any], flags: tuple[dict[int, bool], ...], hook: Hook) -> None:
        """Register `hook` in `table`, noted first, its flags set before it (ids from torch's
        own counter, so they never clash with anyone's handles)."""
        # torch's own counter, as RemovableHandle(table).id takes it (without building a
        # handle and its weak reference to the table: 46 per small model's trace)
        key = RemovableHandle.next_id
        RemovableHandle.next_id = key + 1
        self._entries.append((table, flags, key))
        for flag in flags:
            flag[key] = True
        table[key] = hook


class RecursionHeadroom:
    """Python's recursion limit raised by exactly the frames the inspector adds, then put back.

    Hooks make torch take its slow call path: one more frame (`inner`) per module level, and
    the hooks' own frames while a hook runs. Without this, a model nested as deep as the plain
    call allows would fail only under the inspector; with more than this, a model that fails
    plainly with RecursionError would run under it. So the user's code gets the limit it has
    plainly, plus one frame per open module call; a hook gets a margin for itself while it
    runs. Put back when the hooks go (unless someone else changed it meanwhile).
    """

    MARGIN = 64  # the hooks' own frames
    # Below this many open module calls the limit is not moved at each call: it is raised
    # once by SHALLOW + MARGIN (a program that shallow is far from the limit, and setting it
    # twice per hook costs a few percent of a small model's pass).
    SHALLOW = 32

    def __init__(self) -> None:
        self._base: int | None = None
        self._set: int | None = None
        self._entry_frames = 0
        # The limit set is the one for a shallow program: a hook with fewer than SHALLOW
        # calls open has nothing to do (it checks this flag, not a method call, 4x a call).
        self.steady = False

    @property
    def entry_frames(self) -> int:
        """Frames of the inspector's own between the caller and the model."""
        return self._entry_frames

    @entry_frames.setter
    def entry_frames(self, count: int) -> None:
        self._entry_frames = count
        self.steady = False

    def hold(self, levels: int, in_hook: bool) -> None:
        """`levels` module calls are open; `in_hook`: a hook of ours is running."""
        shallow = levels < self.SHALLOW
        if shallow:
            levels, in_hook = self.SHALLOW, True
        if self._base is None:
            self._base = sys.getrecursionlimit()
        # +2: the next call's `inner` frame, our hook's frame and this method's come before
        # the limit can be raised, where the plain call needs one frame (its forward).
        wanted = self._base + self._entry_frames + levels + 2 + (self.MARGIN if in_hook else 0)
        if wanted == self._set:
            self.steady = shallow
            return
        self.steady = False
        try:
            sys.setrecursionlimit(wanted)
        except RecursionError:  # already deeper than that: keep what there is
            return
        self._set = wanted
        self.steady = shallow

    def restore(self) -> None:
        self.steady = False
        base, mine = self._base, self._set
        if base is not None and mine is not None and sys.getrecursionlimit() == mine:
            sys.setrecursionlimit(base)
        self._base, self._set = None, None


class TensorHooks:
    """Gradient hooks on tensors (module outputs, parameters), removed only by `remove()`.

    As with module hooks, each tensor is noted before its hook goes on and the hook is found
    again by identity, so a KeyboardInterrupt at any point leaves none on a parameter the user
    keeps.
    """

    def __init__(self) -> None:
        self._placed: list[tuple[Any, Hook]] = []  # (a weak reference to the tensor, the hook)

    def add(self, tensor: torch.Tensor, hook: Hook) -> None:
        import weakref

        self._placed.append((weakref.ref(tensor), hook))
        with torch._C.DisableTorchFunctionSubclass():  # a subclass's own code never sees it
            tensor.register_hook(hook)

    def remove(self) -> None:
        """Take every hook off; a KeyboardInterrupt here restarts and is raised after."""
        until_done(self._remove_all)

    def _remove_all(self) -> None:
        placed = self._placed
        while placed:
            ref, hook = placed[-1]
            tensor = ref()
            table = getattr(tensor, "_backward_hooks", None) if tensor is not None else None
            if table:
                for key in [k for k, v in table.items() if v is hook]:
                    table.pop(key, None)
            placed.pop()
