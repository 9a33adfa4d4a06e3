"""Where a pass failed: the user's source line and the torch op with its operand shapes.

The line comes from the exception's traceback: the deepest frame outside torch and the
inspector is the user's line (the `x.view(...)` in their forward, or the `self.fc1(x)` that
called a built-in layer). The op comes from replaying only the failing call with its captured
inputs under a TorchFunctionMode, in eval mode without gradients and with the RNG state put
back afterwards, so no BatchNorm buffer, RNG stream or autograd graph of the user's changes.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from inspector.engine.describe import Describer
from inspector.engine.naming import is_library_file, source_line
from inspector.engine.records import OpInfo, SourceLine


def user_line(tb: TracebackType | None) -> SourceLine | None:
    """The deepest traceback frame that is the user's code."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_library_file(code.co_filename):
            found = source_line(code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


@dataclass
class FailedOp:
    """The torch function that raised, with its live arguments (kept only for diagnosis)."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exception: BaseException
    line: SourceLine | None

    def info(self) -> OpInfo:
        describe = Describer(stats=False).describe
        operands = tuple(describe(a) for a in self.args)
        kwargs = tuple((k, describe(v)) for k, v in self.kwargs.items())
        return OpInfo(name=self.name, operands=operands, kwargs=kwargs)


class _CatchFailingOp(TorchFunctionMode):
    """Passes every torch call through and remembers the first one that raises."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: FailedOp | None = None

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if self.failed is None:
                self.failed = FailedOp(
                    name=op_name(func),
                    args=args,
                    kwargs=kwargs,
                    exception=exc,
                    line=user_line(exc.__traceback__),
                )
            raise


def op_name(func: Callable[..., Any]) -> str:
    """'linear', 'view', 'conv2d', 'cat'... from a torch function or Tensor method."""
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # properties such as Tensor.shape go through __get__
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name.strip("_") if name.startswith("__") else name


def replay_failing_op(
    callable_: nn.Module | Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FailedOp | None:
    """Run the failing call again, side-effect free, and return the op that raised."""
    mode = _CatchFailingOp()
    with _no_side_effects(callable_), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mode:
                callable_(*args, **kwargs)
        except Exception:
            pass
    return mode.failed


@contextlib.contextmanager
def _no_side_effects(callable_: Any) -> Iterator[None]:
    modules = list(callable_.modules()) if isinstance(callable_, nn.Module) else []
    modes = [(m, m.training) for m in modules]
    # Replaying must not fire anyone's hooks (the user's, or a still-attached recorder).
    hooks = []
    for m in modules:
        hooks.append((m, m._forward_pre_hooks.copy(), m._forward_hooks.copy()))
        m._forward_pre_hooks.clear()
        m._forward_hooks.clear()
    rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        for m in modules:
            m.training = False
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        for m, pre, post in hooks:
            m._forward_pre_hooks.update(pre)
            m._forward_hooks.update(post)
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
