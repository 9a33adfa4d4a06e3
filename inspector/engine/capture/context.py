"""The caller's torch context, carried into the thread that runs the model for it.

torch keeps grad mode, inference mode, autocast and the torch function / dispatch mode stacks
per thread, and contextvars are per thread too. A debugger that runs `model(x)` in a worker
thread must run it as the caller's own thread would: under `torch.no_grad()` the output needs
no graph, under `autocast(bfloat16)` it is bfloat16, under `with torch.device("meta")` (a
function mode) new tensors are made on meta.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import _get_current_function_mode_stack

_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "xla", "ipu")


def _dispatch_modes() -> list[Any]:
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        return list(_get_current_dispatch_mode_stack())
    except Exception:
        return []


@dataclass(frozen=True)
class CallerContext:
    """What a thread inherits from the one that asked it to run the model."""

    grad: bool
    inference: bool
    autocast: tuple[tuple[str, torch.dtype], ...]
    autocast_cache: bool
    function_modes: tuple[Any, ...]
    dispatch_modes: tuple[Any, ...]
    variables: contextvars.Context

    @classmethod
    def capture(cls) -> CallerContext:
        """The calling thread's context, now."""
        autocast = []
        for device in _AUTOCAST_DEVICES:
            try:
                if torch.is_autocast_enabled(device):
                    autocast.append((device, torch.get_autocast_dtype(device)))
            except (RuntimeError, ValueError, TypeError):
                continue  # a device type this build does not know
        return cls(
            grad=torch.is_grad_enabled(),
            inference=torch.is_inference_mode_enabled(),
            autocast=tuple(autocast),
            autocast_cache=torch.is_autocast_cache_enabled(),
            function_modes=tuple(_get_current_function_mode_stack()),
            dispatch_modes=tuple(_dispatch_modes()),
            variables=contextvars.copy_context(),
        )

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in this thread as if in the caller's."""
        return self.variables.run(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        with self._applied():
            return fn(*args)

    @contextlib.contextmanager
    def _applied(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.inference:
                stack.enter_context(torch.inference_mode())
            stack.enter_context(torch.set_grad_enabled(self.grad))
            for device, dtype in self.autocast:
                stack.enter_context(
                    torch.autocast(device, dtype=dtype, cache_enabled=self.autocast_cache)
                )
            for mode in self.function_modes:
                stack.enter_context(_pushed(mode, function=True))
            for mode in self.dispatch_modes:
                stack.enter_context(_pushed(mode, function=False))
            yield


@contextlib.contextmanager
def _pushed(mode: Any, *, function: bool) -> Iterator[None]:
    """`mode` on this thread's stack, without its __enter__ (it is entered in the caller's
    thread already; entering again could repeat what its __enter__ does)."""
    if function:
        from torch.overrides import _pop_mode, _push_mode

        _push_mode(mode)
        try:
            yield
        finally:
            _pop_mode()
    else:
        from torch.utils._python_dispatch import _pop_mode as pop_dispatch
        from torch.utils._python_dispatch import _push_mode as push_dispatch

        push_dispatch(mode)
        try:
            yield
        finally:
            pop_dispatch()
