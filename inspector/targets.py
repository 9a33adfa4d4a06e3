"""The FILEs the command line and the browser view open: a Python file that defines
`build() -> (model, args)` (or `(model, args, kwargs)`), and optionally `loss_fn`, `target`
and `backward = True`; loaded as the user's code, its errors told apart from the tool's."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A problem with what the user asked for: printed without a traceback, exit code 2."""


class BuildError(Exception):
    """The user's FILE raised while it was imported or built: its traceback was printed."""


@dataclass
class Target:
    """What a FILE's build() gives: the model, its inputs, and an optional loss."""

    model: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss_fn: Any = None
    target: Any = None
    backward: bool = False  # the FILE sets `backward = True`: show its gradients too

    def trace_kwargs(self) -> dict[str, Any]:
        extra = dict(self.kwargs)
        if self.loss_fn is not None:
            extra.update(loss_fn=self.loss_fn, target=self.target)
        return extra


def unpack_build(built: Any, where: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    from torch import nn

    if not isinstance(built, tuple) or len(built) not in (2, 3):
        got = type(built).__name__
        raise UsageError(
            f"{where}: build() must return (model, args) or (model, args, kwargs), not a {got}"
        )
    model, args = built[0], built[1]
    kwargs = built[2] if len(built) == 3 else {}
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"{where}: build() returned a {type(model).__name__} as the model; the first item "
            "must be the nn.Module itself"
        )
    if not isinstance(args, tuple):
        args = (args,)
    if not isinstance(kwargs, dict):
        raise UsageError(f"{where}: the third item of build()'s result must be a dict of kwargs")
    return model, args, dict(kwargs)


def target_from(
    build: Callable[[], Any], namespace: dict[str, Any] | None = None, where: str = "build()"
) -> Target:
    with _user_code(where):
        built = build()
    model, args, kwargs = unpack_build(built, where)
    namespace = namespace or {}
    loss_fn = namespace.get("loss_fn")
    target = namespace.get("target")
    if loss_fn is not None and target is None:
        raise UsageError(
            f"{where} defines loss_fn but no target; add `target = ...` (a tensor, or a "
            "function that returns one) or remove loss_fn"
        )
    if callable(target) and not hasattr(target, "shape"):
        with _user_code(where):
            target = target()  # a factory, so that building stays lazy
    return Target(model, args, kwargs, loss_fn, target, bool(namespace.get("backward", False)))


@contextlib.contextmanager
def _user_code(where: str) -> Iterator[None]:
    """Around the user's FILE: what it raises is shown as its own traceback, then BuildError."""
    try:
        yield
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception:
        traceback.print_exc()
        raise BuildError(where) from None


def load_file(path: str) -> Target:
    """Import FILE and call its build()."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"_inspector_target_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        with _user_code(path):
            spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    build = getattr(module, "build", None)
    if not callable(build):
        raise UsageError(
            f"{path} defines no build() function; add one that returns (model, args), "
            "e.g. `def build(): return Net(), (torch.randn(4, 3, 32, 32),)`"
        )
    return target_from(build, vars(module), where=path)
