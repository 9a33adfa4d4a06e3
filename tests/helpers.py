"""Helpers for the "never harm the program being debugged" tests.

Two kinds of comparison:

* `hooks_snapshot(model)`: every hook dict of every module (and of each parameter), plus
  torch.nn.modules.module's global hook dicts, as the very objects registered. Before and
  after an entry point on the SAME model it must be equal: the user's hooks intact (same
  keys, same functions, same order) and nothing of the inspector's left.
* `state(model, *inputs)`: parameters, buffers, gradients, training flags and plain
  attributes of every module, and the inputs, as values. After an entry point it must equal
  the state a plain call leaves on a fresh, identically seeded twin.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as torch_module

import inspector

GLOBAL_HOOK_DICTS = tuple(
    sorted(
        name
        for name, value in vars(torch_module).items()
        if name.startswith("_global_") and "hook" in name and isinstance(value, dict)
    )
)

# Module attributes that hold hooks (compared by hooks_snapshot, not by state).
_HOOK_ATTRS = frozenset(
    {
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_is_full_backward_hook",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    }
)
_STRUCTURE_ATTRS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})


def global_hooks() -> dict[str, list[tuple[Any, Any]]]:
    """torch.nn.modules.module's global hook dicts, as (key, hook) lists in order.

    The handle of a global forward hook does not cover `_global_forward_hooks_with_kwargs`
    (torch.nn.modules.module.register_module_forward_hook), so every removal, torch.compile's
    own included, leaves an inert flag there for a key no hook has: those are left out.
    """
    hooks = {name: list(getattr(torch_module, name).items()) for name in GLOBAL_HOOK_DICTS}
    live = torch_module._global_forward_hooks
    hooks["_global_forward_hooks_with_kwargs"] = [
        (k, v) for k, v in torch_module._global_forward_hooks_with_kwargs.items() if k in live
    ]
    return hooks


def _hook_dicts(obj: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in sorted(_HOOK_ATTRS):
        value = getattr(obj, "__dict__", {}).get(name)
        if isinstance(value, dict):
            found[name] = list(value.items())
        elif value is not None:
            found[name] = value
    return found


def hooks_snapshot(*roots: nn.Module) -> dict[str, Any]:
    """Every hook reachable from `roots`, and the global ones, as the registered objects."""
    modules: list[tuple[str, int, dict[str, Any]]] = []
    tensors: list[tuple[str, Any, Any]] = []
    for r, root in enumerate(roots):
        for path, module in root.named_modules(remove_duplicate=False):
            modules.append((f"{r}:{path}", id(module), _hook_dicts(module)))
            for name, p in list(module._parameters.items()) + list(module._buffers.items()):
                if isinstance(p, torch.Tensor):
                    hooks = p._backward_hooks
                    post = getattr(p, "_post_accumulate_grad_hooks", None)
                    tensors.append(
                        (
                            f"{r}:{path}:{name}",
                            list(hooks.items()) if hooks else [],
                            list(post.items()) if post else [],
                        )
                    )
    return {"global": global_hooks(), "modules": modules, "tensors": tensors}


def diff_hooks(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two hooks_snapshot()s, one line per hook dict that changed."""
    lines = []
    if len(before["modules"]) != len(after["modules"]):
        lines.append(f"{len(before['modules'])} modules -> {len(after['modules'])}")
    for (path, _, was), (_, _, now) in zip(before["modules"], after["modules"], strict=False):
        for name in sorted(was.keys() | now.keys()):
            if was.get(name) != now.get(name):
                lines.append(f"module {path!r} {name}: {was.get(name)} -> {now.get(name)}")
    for was, now in zip(before["tensors"], after["tensors"], strict=False):
        if was != now:
            lines.append(f"tensor {was[0]}: {was[1:]} -> {now[1:]}")
    for name in GLOBAL_HOOK_DICTS:
        if before["global"][name] != after["global"][name]:
            lines.append(f"global {name}: {before['global'][name]} -> {after['global'][name]}")
    return lines


def assert_hooks_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    changes = diff_hooks(before, after)
    assert not changes, "hooks changed:\n" + "\n".join(changes[:12])


def hook_count(model: nn.Module) -> int:
    """Module forward/backward hooks on `model` and its submodules."""
    return sum(
        len(getattr(m, "_forward_hooks", {}))
        + len(getattr(m, "_forward_pre_hooks", {}))
        + len(getattr(m, "_backward_hooks", {}))
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def global_hook_count() -> int:
    return sum(len(getattr(torch_module, name)) for name in GLOBAL_HOOK_DICTS)


@contextlib.contextmanager
def global_hooks_restored() -> Iterator[None]:
    """Put the global hook dicts back as they were, whatever a failing test left behind, so
    one leak does not spread to the tests after it (assertions run before this cleanup)."""
    saved = {name: dict(getattr(torch_module, name)) for name in GLOBAL_HOOK_DICTS}
    try:
        yield
    finally:
        for name, items in saved.items():
            live = getattr(torch_module, name)
            live.clear()
            live.update(items)
        entry = sys.modules.get("inspector.entry")
        active = getattr(entry, "_active", None)
        if active is not None:
            with contextlib.suppress(Exception):
                active.detach()


# -- interrupts -----------------------------------------------------------------------------

INSPECTOR_DIR = str(Path(inspector.__file__).resolve().parent)


class InterruptAtLine:
    """A trace function that raises KeyboardInterrupt at the nth line the inspector's own code
    runs: a Ctrl+C landing at a chosen point, every time. Counts lines when nth is None."""

    def __init__(self, nth: int | None) -> None:
        self.nth, self.lines = nth, 0
        self._last: dict[int, int] = {}

    def calls(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename.startswith(INSPECTOR_DIR):
            return self.line
        return None

    def line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            last = self._last.get(id(frame), 0)
            self._last[id(frame)] = frame.f_lineno
            text = _text(frame)
            if (frame.f_lineno < last and text.startswith(("with ", "async with "))) or (
                text == "try:"
            ):
                # Two places where Python reports a line but no instruction there can take a
                # real Ctrl+C: the `with` line again as __exit__ is called on the way out, and
                # a `try:` (one no-op instruction). An exception raised from a trace function
                # at either skips the enclosing `with`'s __exit__ (CPython 3.11), which a real
                # interrupt cannot do: no interrupt is raised there.
                return self.line
            self.lines += 1
            if self.lines == self.nth:
                raise KeyboardInterrupt
        return self.line

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        old = sys.gettrace()
        sys.settrace(self.calls)
        try:
            yield
        finally:
            sys.settrace(old)


def _text(frame: Any) -> str:
    import linecache

    return linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


# -- values ---------------------------------------------------------------------------------


def tensor_value(t: torch.Tensor) -> tuple[Any, ...]:
    """A tensor as a comparable value: bits, dtype, shape, and its autograd facts."""
    facts = (
        type(t).__name__,
        str(t.dtype),
        tuple(t.shape),
        str(t.device),
        t.requires_grad,
        t.grad_fn is not None,
        t.is_inference(),
    )
    try:
        with torch._C.DisableTorchFunctionSubclass():  # a user subclass sees none of this
            data = t.detach().cpu().contiguous().reshape(-1)
            bits = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
    except Exception as exc:  # meta or fake tensors have no bits to compare
        bits = f"<unreadable: {type(exc).__name__}>"
    return (*facts, bits)


def value(obj: Any, _depth: int = 0) -> Any:
    """`obj` as a value that compares equal across identically built twins."""
    if _depth > 20:
        return "<deep>"
    if isinstance(obj, torch.Tensor):
        return tensor_value(obj)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return obj
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(value(v, _depth + 1) for v in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((value(k, _depth + 1), value(v, _depth + 1)) for k, v in obj.items()))
    if isinstance(obj, (set, frozenset)):
        return ("set", tuple(sorted(repr(v) for v in obj)))
    if isinstance(obj, BaseException):
        return ("exception", type(obj).__name__, message(obj))
    return ("object", type(obj).__qualname__)


def message(exc: BaseException) -> str:
    """str(exc), or what went wrong making it (an exception whose __str__ fails)."""
    try:
        return str(exc)
    except Exception as err:
        return f"<str() raised {type(err).__name__}: {err!r}>"


def module_state(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, torch.jit.ScriptModule):
        attrs: dict[str, Any] = {}
    else:
        attrs = {
            k: value(v)
            for k, v in vars(module).items()
            if k not in _HOOK_ATTRS
            and k not in _STRUCTURE_ATTRS
            and not k.startswith("_torchdynamo")  # ids of torch.compile's wrappers
            and not isinstance(v, nn.Module)
        }
    return {
        "type": type(module).__qualname__,
        "training": module.training,
        "params": {
            n: (value(p), value(p.grad)) if p is not None else None
            for n, p in module._parameters.items()
        },
        "buffers": {n: value(b) for n, b in module._buffers.items()},
        "children": tuple(module._modules.keys()),
        "attrs": attrs,
    }


def state(model: nn.Module, *inputs: Any) -> dict[str, Any]:
    """Everything a forward may change, as values: compare with a twin's after a plain call."""
    return {
        "modules": {p: module_state(m) for p, m in model.named_modules(remove_duplicate=False)},
        "inputs": value(inputs),
    }


def diff_state(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    lines = []
    if expected["inputs"] != actual["inputs"]:
        lines.append(f"inputs: {_short(expected['inputs'])} -> {_short(actual['inputs'])}")
    if expected["modules"].keys() != actual["modules"].keys():
        lines.append(f"modules: {list(expected['modules'])} -> {list(actual['modules'])}")
    for path, want in expected["modules"].items():
        have = actual["modules"].get(path)
        if have is None or want == have:
            continue
        for field in want:
            if want[field] != have[field]:
                was, now = _short(want[field]), _short(have[field])
                lines.append(f"{path or '(root)'}.{field}: {was} -> {now}")
    return lines


def assert_state_equal(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    changes = diff_state(expected, actual)
    assert not changes, "state differs from the plain call's:\n" + "\n".join(changes[:12])


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 300 else text[:300] + "..."


def seeded(build: Callable[[], Any], seed: int = 0) -> Any:
    """`build()` with the global RNG seeded: two calls give identical twins."""
    torch.manual_seed(seed)
    return build()


def min_recursion_limit(fn: Callable[[], Any], low: int = 50, high: int = 100_000) -> int:
    """The smallest recursion limit at which `fn()` runs without RecursionError from here."""
    old = sys.getrecursionlimit()
    try:
        while low < high:
            mid = (low + high) // 2
            try:
                sys.setrecursionlimit(mid)
                fn()
                high = mid
            except RecursionError:
                low = mid + 1
            finally:
                sys.setrecursionlimit(old)
    finally:
        sys.setrecursionlimit(old)
    return low


# -- shared by several test modules -----------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> Any:
    """examples/NAME.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def square_loss(out: Any, target: Any = None) -> torch.Tensor:
    """A loss that reaches every float output (squares: a plain sum gives BatchNorm no grad)."""
    from tests.models import _tensors

    ts = [t for t in _tensors(out) if t.is_floating_point() and t.requires_grad]
    return sum((t.float().square().sum() / max(t.numel(), 1) for t in ts), torch.zeros(()))
