"""The one adapter over torch's private fake tensors (torch._subclasses.fake_tensor).

Fake tensors carry shape, dtype and device but no storage, and unlike plain meta tensors they
also cover tensors a forward creates itself (`torch.arange(T)` without a device). Ops whose
output depends on values (`.item()`, `if x:`, boolean masks, `nonzero`, `.numpy()`) raise,
and `data_dependent_op` names them.

Inputs are never handed to the dry run themselves: `FakeRun.convert` returns a copy whose
tensors are fake (a DynamicCache, a namedtuple, a dataclass keep their type), so nothing the
forward writes reaches the user's objects.
"""

from __future__ import annotations

import copy
import logging
from types import TracebackType
from typing import Any

import torch

try:  # private API: keep every use of it in this file
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensor,
        FakeTensorMode,
    )
except ImportError:  # pragma: no cover - very old or very new torch
    FakeTensorMode = None  # type: ignore[assignment, misc]
    FakeTensor = ()  # type: ignore[assignment, misc]
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

# Reads of a tensor's memory, which a fake tensor has not: (words in the error, what it was).
_MEMORY_READS = (
    (".numpy() is not supported", "a tensor read into numpy (.numpy())"),
    ("Cannot access data pointer", "a tensor's memory read directly (data_ptr)"),
    ("Cannot access storage", "a tensor's storage read directly"),
)

_ATOMS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)


class Unverifiable(Exception):
    """An input the dry run has no stand-in for: nested, quantized or sparse tensors."""


def is_fake(value: Any) -> bool:
    return isinstance(value, FakeTensor)


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

    def tensor(self, real: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """A fake stand-in for `real`: its shape, dtype, strides and requires_grad."""
        if is_fake(real):
            return real
        what = _unsupported(real)
        if what is not None:
            raise Unverifiable(what)
        fake = torch.empty_strided(
            tuple(real.shape), tuple(real.stride()), dtype=real.dtype, device=device
        )
        if real.requires_grad:
            fake.requires_grad_(True)
        return fake

    def parameter(self, real: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """A fake stand-in that is an nn.Parameter to Module.__setattr__ and isinstance.

        nn.Parameter(fake) makes it so by marking a detached copy; the fake is new and has
        no history, so it is marked itself (one op less per parameter).
        """
        fake = self.tensor(real, device)
        try:
            fake.requires_grad_(real.requires_grad)
            fake._is_param = True
        except Exception:  # pragma: no cover - a torch without the marker
            return torch.nn.Parameter(fake, requires_grad=real.requires_grad)
        if not isinstance(fake, torch.nn.Parameter):  # pragma: no cover
            return torch.nn.Parameter(fake, requires_grad=real.requires_grad)
        return fake

    def from_real(self, real: torch.Tensor) -> torch.Tensor:
        """A fake view of a real tensor met during the run (where it lives unchanged)."""
        return self.mode.from_tensor(real)

    def convert(self, value: Any, device: torch.device | str) -> Any:
        """A copy of `value` for the dry run, its tensors fake; same types (namedtuples,
        dataclasses, cache objects). Tuples of ints stay tuples of ints."""
        if isinstance(value, _ATOMS):
            return value
        if isinstance(value, torch.Tensor):
            return self.tensor(value, device)
        memo: dict[int, Any] = {id(t): self.tensor(t, device) for t in _tensors_in(value)}
        try:
            return copy.deepcopy(value, memo)
        except Exception:  # cannot be copied: handed over as it is (the caller isolates it)
            return value


def _unsupported(tensor: torch.Tensor) -> str | None:
    if tensor.is_nested:
        return "a nested tensor"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.layout != torch.strided:
        return f"a tensor with layout {str(tensor.layout).removeprefix('torch.')}"
    return None


def _tensors_in(value: Any, limit: int = 100_000) -> list[torch.Tensor]:
    """The tensors reachable from `value` through containers and attributes."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()
    pending = [value]
    while pending and len(seen) < limit:
        obj = pending.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        elif isinstance(obj, dict):
            pending.extend(obj.values())
            pending.extend(obj.keys())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            pending.extend(obj)
        if not isinstance(obj, torch.Tensor):
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict):
                pending.extend(state.values())
            for cls in type(obj).__mro__:
                for name in cls.__dict__.get("__slots__", ()):
                    if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                        pending.append(getattr(obj, name))
    return found


def data_dependent_op(exc: BaseException) -> str | None:
    """A description of the value-dependent op that stopped a dry run, or None."""
    if not isinstance(exc, (DataDependentOutputException, DynamicOutputShapeException)):
        try:
            text = str(exc) if isinstance(exc, RuntimeError) else ""
        except Exception:
            return None
        return next((what for words, what in _MEMORY_READS if words in text), None)
    text = str(getattr(exc, "func", None) or exc)  # "aten._local_scalar_dense.default"
    parts = text.split(".")
    name = parts[1] if len(parts) >= 3 else text
    return _OP_WORDS.get(name, name)
