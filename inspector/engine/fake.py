"""The one adapter over torch's private fake tensors (torch._subclasses.fake_tensor).

Fake tensors carry shape, dtype and device but no storage, and unlike plain meta tensors they
also cover tensors a forward creates itself (`torch.arange(T)` without a device). Ops whose
output depends on values (`.item()`, `if x:`, boolean masks, `nonzero`) raise typed
exceptions, which `data_dependent_op` names.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import torch

try:  # private API: keep every use of it in this file
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensorMode,
    )
except ImportError:  # pragma: no cover - very old or very new torch
    FakeTensorMode = None  # type: ignore[assignment, misc]
    DataDependentOutputException = DynamicOutputShapeException = ()  # type: ignore[assignment, misc]

_LOGGERS = ("torch._subclasses.fake_tensor", "torch.fx.experimental.symbolic_shapes")

_OP_WORDS = {
    "_local_scalar_dense": "a tensor read as a Python number (.item(), float(x), `if x:`)",
    "nonzero": "nonzero / a boolean mask index",
    "masked_select": "masked_select",
    "unique": "torch.unique",
    "_unique2": "torch.unique",
    "repeat_interleave": "repeat_interleave with tensor repeats",
}


class FakeRun:
    """A context in which new tensors are fake; converts real values and shapes into it."""

    def __init__(self) -> None:
        if FakeTensorMode is None:
            raise RuntimeError("this torch has no fake tensors; dry runs are unavailable")
        # Real tensors that the model holds outside parameters and buffers (a registered
        # mask kept as a plain attribute) are converted on the fly.
        self.mode = FakeTensorMode(allow_non_fake_inputs=True)
        self._levels: list[tuple[logging.Logger, int]] = []

    def __enter__(self) -> FakeRun:
        for name in _LOGGERS:  # fake tensors log every failing meta kernel at ERROR level
            logger = logging.getLogger(name)
            self._levels.append((logger, logger.level))
            logger.setLevel(logging.CRITICAL)
        self.mode.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.mode.__exit__(exc_type, exc, tb)
        for logger, level in self._levels:
            logger.setLevel(level)

    def empty(self, shape: Any, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """A fake tensor; call inside the context."""
        return torch.empty(tuple(shape), dtype=dtype, device=device)

    def convert(self, value: Any, device: torch.device | str) -> Any:
        """A value for the dry run: tensors become fake, a tuple of ints a float32 tensor."""
        if isinstance(value, torch.Tensor):
            return self.empty(value.shape, value.dtype, device)
        if isinstance(value, torch.Size) or (
            isinstance(value, tuple) and value and all(isinstance(d, int) for d in value)
        ):
            return self.empty(value, torch.float32, device)
        if isinstance(value, (list, tuple)):
            return type(value)(self.convert(v, device) for v in value)
        if isinstance(value, dict):
            return {k: self.convert(v, device) for k, v in value.items()}
        return value


def data_dependent_op(exc: BaseException) -> str | None:
    """A description of the value-dependent op that stopped a dry run, or None."""
    if not isinstance(exc, (DataDependentOutputException, DynamicOutputShapeException)):
        return None
    text = str(getattr(exc, "func", None) or exc)  # "aten._local_scalar_dense.default"
    parts = text.split(".")
    name = parts[1] if len(parts) >= 3 else text
    return _OP_WORDS.get(name, name)
