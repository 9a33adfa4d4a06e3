"""The one adapter over torch's private fake tensors (torch._subclasses.fake_tensor).

Fake tensors carry shape, dtype and device but no storage, and unlike plain meta tensors they
also cover tensors a forward creates itself (`torch.arange(T)` without a device). Ops whose
output depends on values (`.item()`, `if x:`, boolean masks, `nonzero`, `.numpy()`) raise,
and `data_dependent_op` names them.

Inputs are never handed to the dry run themselves: `FakeRun.convert` returns a copy whose
tensors are fake (a DynamicCache, a namedtuple, a dataclass keep their type), so nothing the
forward writes reaches the user's objects.

Integer and bool tensors are the exception: token ids, positions, masks and labels decide
which rows a lookup reads and which branch a library takes (`if mask.all():` drops a mask),
so they stay real, as copies the run owns (`FakeRun.owns`). Ops whose operands are all owned
real tensors run for real (`FakeRun.run_real`): index and mask arithmetic is small, and the
run then follows the branches the real run follows and sees the ids a lookup gets.

Common ops are answered ahead of the fake mode by inspector.engine.dryrun.shortcuts, the
other file that uses the private API.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import torch

from inspector.engine.dryrun.shortcuts import Shortcuts

try:  # private API: keep every use of it in this file (and shortcuts.py)
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensor,
        FakeTensorMode,
        unset_fake_temporarily,
    )
except ImportError:  # pragma: no cover - very old or very new torch
    FakeTensorMode = None  # type: ignore[assignment, misc]
    unset_fake_temporarily = None  # type: ignore[assignment]
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

# Real values kept per tensor at most (elements): index and mask tensors are far smaller; a
# result past it (a one-hot of a large vocabulary, a 4-D mask of a long sequence) goes fake.
REAL_LIMIT = 1 << 22

# Factories that may make a real integer tensor (never the random ones: they would draw from
# the caller's generator).
_REAL_FACTORIES = frozenset(
    {"arange", "zeros", "ones", "full", "empty", "tensor", "as_tensor", "eye", "tril_indices",
     "triu_indices", "scalar_tensor"}
)  # fmt: skip
# Reads that return Python values or metadata: run for real without a fake rehearsal.
_SCALAR_READS = frozenset(
    {"__get__", "item", "tolist", "numpy", "size", "dim", "numel", "__len__", "__bool__",
     "__int__", "__index__", "__float__", "__format__", "__repr__", "__hash__", "data_ptr",
     "stride", "is_contiguous", "element_size", "nelement", "ndimension"}
)  # fmt: skip
# Ops whose result has at most as many elements as their one tensor operand (with numbers
# beside it): views, reshapes, dtype conversions, reductions, arithmetic with a number.
_NO_LARGER = frozenset(
    {"view", "reshape", "unsqueeze", "squeeze", "flatten", "transpose", "t", "permute",
     "contiguous", "clone", "detach", "float", "long", "int", "bool", "half", "double",
     "neg", "abs", "logical_not", "__invert__", "__neg__", "cumsum", "sum", "any", "all",
     "add", "sub", "mul", "eq", "ne", "lt", "le", "gt", "ge", "__add__", "__radd__",
     "__sub__", "__rsub__", "__mul__", "__rmul__", "__eq__", "__ne__", "__lt__", "__le__",
     "__gt__", "__ge__", "__and__", "__or__", "__getitem__"}
)  # fmt: skip
_RANDOM_WORDS = ("rand", "bernoulli", "multinomial", "normal", "dropout", "uniform",
                 "exponential", "geometric", "cauchy", "poisson", "shuffle")  # fmt: skip


class Unverifiable(Exception):
    """An input the dry run has no stand-in for: nested, quantized or sparse tensors."""


def is_fake(value: Any) -> bool:
    return isinstance(value, FakeTensor)


class FakeRun:
    """A context in which new tensors are fake; converts real values and shapes into it."""

    def __init__(self, *, shortcuts: bool = True) -> None:
        if FakeTensorMode is None:
            raise RuntimeError("this torch has no fake tensors; dry runs are unavailable")
        # Real tensors that the model holds outside parameters and buffers (a registered
        # mask kept as a plain attribute) are converted on the fly.
        self.mode = FakeTensorMode(allow_non_fake_inputs=True)
        self._muted: list[tuple[logging.Logger, bool]] = []
        self._owned: dict[int, torch.Tensor] = {}  # real tensors of the run, by id
        self._direct = True  # stand-ins made without the mode's dispatch (empty_strided)
        self._looked_up: dict[int, torch.Tensor] = {}  # fakes of owned ids, by the ids' id
        self.shortcuts: Shortcuts | None = None
        if shortcuts:
            self.shortcuts = Shortcuts(self.mode)

    def __enter__(self) -> FakeRun:
        # Fake tensors log every failing meta kernel at ERROR level. `disabled`, not a level:
        # setLevel clears the cache of every logger in the process (~0.2 ms each time).
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            self._muted.append((logger, logger.disabled))
            logger.disabled = True
        if torch._C._len_torch_dispatch_stack():
            # the caller's own dispatch mode (a FLOP counter around check) sees every op, as
            # it would without the shortcuts, which would answer ops before it
            self.shortcuts = None
        self.mode.__enter__()
        if self.shortcuts is not None:
            try:
                self.shortcuts.__enter__()
            except BaseException:
                self.mode.__exit__(None, None, None)
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.shortcuts is not None:
                self.shortcuts.__exit__(exc_type, exc, tb)
        finally:
            self.mode.__exit__(exc_type, exc, tb)
        for logger, disabled in self._muted:
            logger.disabled = disabled

    def owns(self, value: Any) -> bool:
        """`value` is a real tensor of the run: a copy of an integer input or an op's result."""
        return type(value) is torch.Tensor and self._owned.get(id(value)) is value

    def release(self) -> None:
        self._owned.clear()
        self._looked_up.clear()

    def lookup_operands(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A lookup's operands with its owned ids as fakes, once their values are checked:
        the fake mode converts a real operand anew at each op and skips its dispatch cache
        for the op; a fake of the same ids is kept for the run (same shape, same fake)."""
        made = {
            i: f
            for i, f in self._looked_up.items()
            if (t := self._owned.get(i)) is not None
            and f.shape == t.shape and f.stride() == t.stride() and f.dtype == t.dtype
        }  # fmt: skip
        fake_args = self._stand_ins(args, made)
        fake_kwargs = dict(zip(kwargs, self._stand_ins(kwargs.values(), made), strict=True))
        self._looked_up.update(made)
        return tuple(fake_args), fake_kwargs

    @contextmanager
    def real(self) -> Iterator[None]:
        """Ops inside run on real tensors (the fake mode is off)."""
        with unset_fake_temporarily():
            yield

    def keeps_real(self, tensor: torch.Tensor) -> bool:
        """Integer and bool tensors keep their values (see the module docstring)."""
        return (
            (not tensor.is_floating_point() and not tensor.is_complex())
            and tensor.layout == torch.strided
            and not tensor.is_nested
            and not tensor.is_quantized
            and tensor.device.type != "meta"
            and tensor.numel() <= REAL_LIMIT
            and type(tensor) is torch.Tensor
        )

    def _own(self, value: Any) -> Any:
        """Take the real tensors in an op's result, or make fakes of the ones too large."""
        if type(value) is torch.Tensor:
            if value.numel() > REAL_LIMIT or value.device.type == "meta":
                return self.mode.from_tensor(value)
            self._owned[id(value)] = value
            return value
        if isinstance(value, tuple) and any(type(v) is torch.Tensor for v in value):
            items = [self._own(v) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
        if isinstance(value, list):
            return [self._own(v) for v in value]
        return value

    def runs_real(self, func: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> bool:  # fmt: skip
        """The op has only owned real tensors as operands (or is a non-random factory)."""
        found = False
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                if type(value) is not torch.Tensor or self._owned.get(id(value)) is not value:
                    return False
                found = True
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
                if not all(self.owns(v) for v in value):
                    return False
                found = True
        name = getattr(func, "__name__", "")
        if "out" in kwargs or any(word in name for word in _RANDOM_WORDS):
            return False
        return found or (name in _REAL_FACTORIES and getattr(func, "__module__", "") == "torch")

    def run_real(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:  # fmt: skip
        """Run an op of owned operands for real; first on fakes where its result may be
        large or not an integer tensor (a factory), and stay fake when it is. An op whose
        result cannot be larger than its one tensor operand (a view, a conversion, arithmetic
        with a number) needs no rehearsal: 100-200 us saved each.

        The rehearsal is handed fakes of the owned operands (their shapes, strides and
        dtypes): handed the real ones, the fake mode converts each anew, a millisecond apiece.
        """
        name = getattr(func, "__name__", "")
        if name not in _SCALAR_READS and not _no_larger(name, args, kwargs):
            made: dict[int, torch.Tensor] = {}
            fake_args = self._stand_ins(args, made)
            fake_kwargs = dict(zip(kwargs, self._stand_ins(kwargs.values(), made), strict=True))
            try:
                rehearsal = func(*fake_args, **fake_kwargs)
            except Exception:  # a value-dependent op, or the op's own error: ask the real one
                rehearsal = None
            if not _fits(rehearsal, factory=name in _REAL_FACTORIES):
                return rehearsal
        with self.real():
            out = func(*args, **kwargs)
        return self._own(out)

    def _stand_ins(self, values: Any, made: dict[int, torch.Tensor]) -> list[Any]:
        """`values` with each owned tensor (alone or in a list or tuple, as `runs_real` finds
        them) replaced by a fake of it; the same tensor twice by the same fake."""

        def fake_of(value: Any) -> Any:
            if type(value) is not torch.Tensor or not self.owns(value):
                return value
            if id(value) not in made:
                made[id(value)] = self.empty_strided(
                    tuple(value.shape), tuple(value.stride()), value.dtype, value.device
                )
            return made[id(value)]

        out = []
        for value in values:
            if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
                items = [fake_of(v) for v in value]
                value = items if isinstance(value, list) else type(value)(items)
            out.append(fake_of(value))
        return out

    def empty(self, shape: Any, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """A fake tensor; call inside the context."""
        return torch.empty(tuple(shape), dtype=dtype, device=device)

    def tensor(self, real: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """A stand-in for `real`: a fake of its shape, dtype, strides and requires_grad, or
        for an integer or bool tensor a real copy the run owns."""
        if is_fake(real) or self.owns(real):
            return real
        if self.keeps_real(real):
            with self.real():
                copy = real.detach().clone()
            self._owned[id(copy)] = copy
            return copy
        return self._fake(real, device)

    def _fake(self, real: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        what = _unsupported(real)
        if what is not None:
            raise Unverifiable(what)
        fake = self.empty_strided(tuple(real.shape), tuple(real.stride()), real.dtype, device)
        if real.requires_grad:
            fake.requires_grad_(True)
        return fake

    def empty_strided(self, shape: tuple[int, ...], stride: tuple[int, ...], dtype: torch.dtype,
                      device: torch.device | str) -> torch.Tensor:  # fmt: skip
        """`torch.empty_strided` in the fake mode, made as the mode makes it (a meta tensor
        wrapped as a fake of `device`) without a trip through its dispatch: a quarter of the
        cost, for each parameter and buffer of every check."""
        if self._direct:
            try:
                with torch._C._DisableTorchDispatch():  # no mode sees the meta tensor made
                    elem = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                if self.shortcuts is not None:  # (its way of making a fake, a third the cost)
                    return self.shortcuts.wrap(elem, torch.device(device))
                return FakeTensor(self.mode, elem, torch.device(device))
            except Exception:  # another torch's constructor: the mode's own way from now on
                self._direct = False
        return torch.empty_strided(shape, stride, dtype=dtype, device=device)

    def parameter(self, real: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """A fake stand-in that is an nn.Parameter to Module.__setattr__ and isinstance.

        nn.Parameter(fake) makes it so by marking a detached copy; the fake is new and has
        no history, so it is marked itself (one op less per parameter).
        """
        fake = self._fake(real, device)
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
        # reading the inputs (shape, stride, dtype) is ours: a subclass's own code never sees it
        with torch._C.DisableTorchFunctionSubclass():
            if isinstance(value, torch.Tensor):
                return self.tensor(value, device)
            memo: dict[int, Any] = {id(t): self.tensor(t, device) for t in _tensors_in(value)}
        try:
            return copy.deepcopy(value, memo)
        except Exception:  # cannot be copied: handed over as it is (the caller isolates it)
            return value


def _no_larger(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """`_NO_LARGER` applies: one tensor operand, everything else numbers, flags, dtypes and
    dims; for `__getitem__`, an index of ints, slices, None and `...` (a list would gather)."""
    if name not in _NO_LARGER or not args or type(args[0]) is not torch.Tensor:
        return False
    rest = (*args[1:], *kwargs.values())
    if name == "__getitem__":
        key = rest[0] if len(rest) == 1 else None
        return all(type(k) in _INDEX for k in (key if type(key) is tuple else (key,)))
    return all(type(v) in _PLAIN or _dims(v) for v in rest)


def _dims(value: Any) -> bool:
    return type(value) in (tuple, list, torch.Size) and all(type(d) is int for d in value)


_PLAIN = frozenset({int, float, bool, type(None), torch.dtype})
_INDEX = frozenset({int, bool, slice, type(None), type(Ellipsis)})


def _fits(value: Any, *, factory: bool) -> bool:
    """A rehearsal's result may be made real: small, and for a factory an integer tensor."""
    if value is None:
        return True
    tensors = [value] if isinstance(value, torch.Tensor) else []
    if isinstance(value, (tuple, list)):
        tensors = [v for v in value if isinstance(v, torch.Tensor)]
    for t in tensors:
        if t.numel() > REAL_LIMIT or t.device.type == "meta":
            return False
        if factory and (t.is_floating_point() or t.is_complex()):
            return False
    return True


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
