"""Ops the dry run answers itself, ahead of the fake mode's own dispatch.

The fake mode answers an op in 60-130 us on a cache hit (it hashes every operand to find its
entry), and its meta kernels for elementwise ops, addmm and friends are Python references
that take 100-800 us on a miss. On a tiny model that is 10-20x the real forward. `Shortcuts`
is a dispatch mode entered after the fake mode, so it sees each op first, and answers the
common ones in a few microseconds; everything else, and every case a rule does not cover
exactly, goes on to the fake mode as before:

- views, mm, bmm, softmax and the like: torch's own C++ meta kernel, run directly on the
  fakes (as the fake mode runs it on a cache miss), so results and errors are torch's;
- elementwise ops, reductions, layer norm, cat and addmm on operands of one dtype and
  device, which torch's meta kernels answer only through Python references: the result is
  made from the rule every kernel follows there (broadcast shape, the operands' dtype, the
  layout an elementwise op keeps, contiguous for the others);
- `Tensor.device`, which a fake tensor answers through the dispatcher each time C++ asks.

A rule declines (returns None) wherever a case is not plainly covered: another fake mode's
tensor, a real tensor, operands that are all constants (the fake mode computes those for
real, and its result keeps its values), mixed dtypes or devices, broadcasting over a
non-contiguous operand, a layout whose order torch would have to guess, keyword arguments it
does not know, shapes that do not fit (the fake mode then raises the error torch raises).
tests/engine/dryrun/test_shortcuts.py compares every rule with the fake mode and, where the
fake mode's Python reference and torch's C++ kernel differ, with the real run.

Like inspector.engine.dryrun.fake, this file uses torch's private fake-tensor API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
_DEVICE = torch.ops.prim.device.default

_NO_DISPATCH = torch._C._DisableTorchDispatch
_make_subclass = torch.Tensor._make_subclass
_UNKNOWN: Any = object()
_KEEP_KEYS = torch._C._PreserveDispatchKeyGuard
_meta_in_tls = torch._C._set_meta_in_tls_dispatch_include

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_NUMBERS = (int, float)  # bool is an int; complex is not a number here (it promotes)

Rule = Callable[["Shortcuts", Any, tuple[Any, ...], dict[str, Any]], Any]


class Shortcuts(TorchDispatchMode):
    """Answers the ops of `_RULES` for fakes of `mode` (see the module docstring)."""

    def __init__(self, mode: FakeTensorMode) -> None:
        super().__init__()
        self.mode = mode
        self.answered = 0  # ops answered here (the rest went on to the fake mode)
        # per device: the state a new fake starts with, or None to use FakeTensor() itself
        self._fresh: dict[torch.device, dict[str, Any] | None] = {}
        # what FakeTensor() does to a new fake's data pointer, by the mode's setting
        self._guard_data_ptr = (
            torch._C._set_warn_deprecated_on_mutable_data_ptr
            if mode._allow_unsafe_data_ptr_access
            else torch._C._set_throw_on_mutable_data_ptr
        )

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is _DEVICE:
            x = args[0]
            if type(x) is FakeTensor and x.fake_mode is self.mode:
                return torch.device("meta") if self.mode.in_kernel_invocation else x.fake_device
        else:
            rule = _RULES.get(func)
            if rule is not None and not _all_constants(args):
                out = rule(self, func, args, kwargs or {})
                if out is not None:
                    self.answered += 1
                    return out
        return func(*args, **(kwargs or {}))

    def ours(self, x: Any) -> bool:
        """A fake of this run."""
        return type(x) is FakeTensor and x.fake_mode is self.mode

    def wrap(self, meta: torch.Tensor, device: torch.device) -> Any:
        """A fake of `device` over `meta`, as FakeTensor(mode, meta, device) makes it.

        The constructor spends two thirds of a shortcut's time on checks of its arguments
        and one attribute at a time; a fake is made here from the same C++ call and the
        state a new fake starts with, copied. That state is learned, per device, from a fake
        the constructor made, and the copy is compared with it once; where they differ (a
        torch that keeps more, a debug mode) the constructor is used from then on.
        """
        fresh = self._fresh.get(device, _UNKNOWN)
        if fresh is _UNKNOWN:
            fresh = self._fresh[device] = self._learn(meta, device)
        if fresh is None:
            return FakeTensor(self.mode, meta, device)
        fake = _make_subclass(FakeTensor, meta, meta.requires_grad, dispatch_device=True,
                              device_for_backend_keys=device)  # fmt: skip
        self._guard_data_ptr(fake)
        fake.__dict__.update(fresh)
        return fake

    def _learn(self, meta: torch.Tensor, device: torch.device) -> dict[str, Any] | None:
        try:
            made = FakeTensor(self.mode, meta, device)
            fresh = dict(made.__dict__)
            if _debug() or any(v is not None for k, v in fresh.items() if k.endswith("memo")):
                return None
            self._fresh[device] = fresh
            copy = self.wrap(meta, device)
            same = (type(copy) is type(made) and copy.__dict__ == made.__dict__
                    and copy.device == made.device and copy.fake_mode is self.mode)  # fmt: skip
            return fresh if same else None
        except Exception:  # pragma: no cover - another torch's constructor
            return None

    def kernel(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
               device: torch.device) -> Any:  # fmt: skip
        """torch's meta kernel of `func` on the fakes, as the fake mode runs it."""
        mode = self.mode
        with _NO_DISPATCH():
            before, mode.in_kernel_invocation = mode.in_kernel_invocation, True
            try:
                with _KEEP_KEYS():
                    _meta_in_tls(True)
                    out = func(*args, **kwargs)
            finally:
                mode.in_kernel_invocation = before
        if type(out) is torch.Tensor:
            return self.wrap(out, device)
        if isinstance(out, (tuple, list)) and all(type(t) is torch.Tensor for t in out):
            return type(out)(self.wrap(t, device) for t in out)
        return None  # pragma: no cover - every kernel of _KERNELS returns tensors

    def new(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
            strides: tuple[int, ...] | None = None) -> Any:  # fmt: skip
        """A new fake, contiguous unless `strides` are given."""
        if strides is None:
            strides = _contiguous(shape)
        with _NO_DISPATCH():
            meta = torch.empty_strided(shape, strides, dtype=dtype, device="meta")
        return self.wrap(meta, device)


def _debug() -> bool:
    """TORCH_FAKE_TENSOR_DEBUG: each fake keeps the traceback that made it."""
    from torch._subclasses.fake_tensor import FakeTensorConfig

    return bool(FakeTensorConfig.debug)


def _all_constants(args: tuple[Any, ...]) -> bool:
    """Every fake among `args` (in lists too) has a known value (a `torch.tensor` literal):
    the fake mode runs such an op for real, and its result keeps its value. One operand
    without a value makes the result a plain fake, as a rule makes it."""
    found = False
    for a in args:
        for t in a if isinstance(a, (list, tuple)) else (a,):
            if type(t) is FakeTensor:
                if t.constant is None:
                    return False
                found = True
    return found


def _contiguous(shape: Any) -> tuple[int, ...]:
    """The strides torch gives a new contiguous tensor of `shape`."""
    strides = [1] * len(shape)
    step = 1
    for i in range(len(shape) - 1, -1, -1):
        strides[i] = step
        step *= max(shape[i], 1)
    return tuple(strides)


def _plain(x: Any) -> bool:
    """A floating tensor laid out as a new contiguous tensor of its shape (size-1 dims too)."""
    return x.dtype in _FLOATS and x.stride() == _contiguous(x.shape)


def _elementwise_strides(x: Any) -> tuple[int, ...] | None:
    """The strides of an elementwise op's result on `x` (and on operands laid out as `x`):
    dense, its dims in the order of `x`'s strides, which keeps a transposed or permuted
    layout and closes the gaps of a slice. None where the order is ambiguous (dims of size 1
    or 0, equal strides, overlapping dims) and `x` is not contiguous: torch's tie-breaking is
    not copied here."""
    shape, strides = tuple(x.shape), x.stride()
    if strides == _contiguous(shape):
        return strides
    if any(n <= 1 for n in shape) or len(set(strides)) != len(strides):
        return None
    out = [0] * len(shape)
    step = reach = 1
    for i in sorted(range(len(shape)), key=strides.__getitem__):
        if strides[i] < reach:  # overlapping memory (an expanded dim): ambiguous too
            return None
        reach = strides[i] * shape[i]
        out[i] = step
        step *= shape[i]
    return tuple(out)


def _channels_last_like(shape: Any, strides: tuple[int, ...]) -> bool:
    """torch's guess that a 4-D or 5-D tensor is channels-last from its strides (as its
    suggest_memory_format makes it), which decides the layout of a cat."""
    if len(shape) == 4:
        order: tuple[int, ...] = (1, 3, 2, 0)
    elif len(shape) == 5:
        order = (1, 4, 3, 2, 0)
    else:
        return False
    if strides[1] == 0:
        return False
    least = 0
    for d in order:
        if shape[d] == 0 or strides[d] < least:
            return False
        if d == 0 and least == strides[1]:
            return False
        least = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def _device_of(run: Shortcuts, args: Any) -> torch.device | None:
    """The one device of the tensors among `args` (in lists too), all fakes of the run."""
    device = None
    for a in args:
        items = a if isinstance(a, (list, tuple)) else (a,)
        for t in items:
            if isinstance(t, torch.Tensor):
                fake: Any = t
                if not run.ours(fake) or (device is not None and fake.fake_device != device):
                    return None
                device = fake.fake_device
    return device


def _kernel_rule(allowed: frozenset[str] = frozenset()) -> Rule:
    def rule(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs and not kwargs.keys() <= allowed:
            return None
        device = _device_of(run, args)
        if device is None:
            return None
        return run.kernel(func, args, kwargs, device)

    return rule


def _unary(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) != 1 or kwargs:
        return None
    x = args[0]
    if not run.ours(x) or x.dtype not in _FLOATS:
        return None
    strides = _elementwise_strides(x)
    if strides is None:
        return None
    return run.new(tuple(x.shape), x.dtype, x.fake_device, strides)


def _broadcast(a: Any, b: Any) -> tuple[int, ...] | None:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for p, q in zip(a, b, strict=True):
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        else:
            return None
    return tuple(out)


def _binary(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Tensor op tensor (same dtype and device) or tensor op Python number: operands of one
    layout keep it; operands that broadcast must be contiguous."""
    if len(args) != 2 or kwargs:
        return None
    x, y = args
    if not run.ours(x) or x.dtype not in _FLOATS:
        return None
    same = type(y) in _NUMBERS or type(y) is bool
    if not same:
        if not run.ours(y) or y.dtype != x.dtype or y.fake_device != x.fake_device:
            return None
        same = x.shape == y.shape and x.stride() == y.stride()
    if same:
        strides = _elementwise_strides(x)
        if strides is None:
            return None
        return run.new(tuple(x.shape), x.dtype, x.fake_device, strides)
    if not (_plain(x) and _plain(y)):
        return None
    shape = _broadcast(x.shape, y.shape)
    if shape is None:
        return None
    return run.new(shape, x.dtype, x.fake_device)


def _addmm(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """bias + m1 @ m2 (a Linear with a 2-D input, a transformers Conv1D)."""
    if len(args) != 3 or kwargs:
        return None
    bias, m1, m2 = args
    if not (run.ours(bias) and run.ours(m1) and run.ours(m2)):
        return None
    dtype, device = m1.dtype, m1.fake_device
    if dtype not in _FLOATS or any(t.dtype != dtype or t.fake_device != device
                                   for t in (bias, m2)):  # fmt: skip
        return None
    if m1.dim() != 2 or m2.dim() != 2 or m1.shape[1] != m2.shape[0] or bias.dim() > 2:
        return None
    shape = (m1.shape[0], m2.shape[1])
    if _broadcast(bias.shape, shape) != shape:
        return None
    return run.new(shape, dtype, device)


def _dim(d: Any, n: int) -> int | None:
    """A dimension index wrapped into range(n), or None where torch would raise."""
    if type(d) is not int or not -n <= d < n:
        return None
    return d % n


def _mean(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """mean over listed dims (an RMSNorm's variance), the input's dtype."""
    if kwargs or not 2 <= len(args) <= 3:
        return None
    x, dims = args[0], args[1]
    keep = args[2] if len(args) == 3 else False
    if not run.ours(x) or not _plain(x) or x.dim() == 0 or not isinstance(dims, (list, tuple)):
        return None
    wrapped = {_dim(d, x.dim()) for d in dims}
    if not dims or None in wrapped or len(wrapped) != len(dims) or type(keep) is not bool:
        return None
    shape = tuple(1 if i in wrapped else n for i, n in enumerate(x.shape)
                  if keep or i not in wrapped)  # fmt: skip
    return run.new(shape, x.dtype, x.fake_device)


def _layer_norm(run: Shortcuts, func: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """(output, mean, rstd) of a LayerNorm whose weight and bias match its input."""
    if kwargs or len(args) != 5:
        return None
    x, normalized, weight, bias, _ = args
    if not run.ours(x) or not _plain(x) or not isinstance(normalized, (list, tuple)):
        return None
    k = len(normalized)
    if k == 0 or k > x.dim() or tuple(x.shape[x.dim() - k :]) != tuple(normalized):
        return None
    for t in (weight, bias):
        if t is not None and not (run.ours(t) and t.dtype == x.dtype and
                                  t.fake_device == x.fake_device and
                                  tuple(t.shape) == tuple(normalized)):  # fmt: skip
            return None
    device = x.fake_device
    # the statistics are kept in float32 for half inputs, except on the CPU (torch's rule)
    stats = x.dtype
    if device.type != "cpu" and x.dtype in (torch.float16, torch.bfloat16):
        stats = torch.float32
    kept = (*x.shape[: x.dim() - k], *(1,) * k)
    return (run.new(tuple(x.shape), x.dtype, device), run.new(kept, stats, device),
            run.new(kept, stats, device))  # fmt: skip


def _cat(run: Shortcuts, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Tensors of one dtype, device and rank, equal but along `dim`; torch skips 1-D empty
    ones whatever the rank (a key/value cache that starts as `torch.tensor([])`). The result
    is contiguous unless every operand looks channels-last (then the fake mode answers)."""
    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], (list, tuple)):
        return None
    given = args[0]
    if not given or not all(run.ours(t) for t in given):
        return None
    dtype, device = given[0].dtype, given[0].fake_device
    if dtype not in _FLOATS or any(t.dtype != dtype or t.fake_device != device for t in given):
        return None
    if all(_channels_last_like(t.shape, t.stride()) for t in given):
        return None  # the result would be channels-last too
    tensors = [t for t in given if t.shape != (0,)]
    if not tensors:
        return None
    first = tensors[0]
    n = first.dim()
    d = _dim(args[1] if len(args) == 2 else 0, n) if n else None
    if d is None:
        return None
    total = 0
    for t in tensors:
        if t.dim() != n or t.numel() == 0:
            return None
        if any(t.shape[i] != first.shape[i] for i in range(n) if i != d):
            return None
        total += t.shape[d]
    shape = (*first.shape[:d], total, *first.shape[d + 1 :])
    return run.new(shape, first.dtype, first.fake_device)


_VIEWS = (
    _aten.view.default, _aten._unsafe_view.default, _aten.transpose.int, _aten.t.default,
    _aten.unsqueeze.default, _aten.squeeze.dim, _aten.squeeze.dims, _aten.squeeze.default,
    _aten.slice.Tensor, _aten.select.int, _aten.split.Tensor, _aten.split_with_sizes.default,
    _aten.expand.default, _aten.permute.default, _aten.alias.default, _aten.detach.default,
    _aten.unbind.int,
)  # fmt: skip
# Ops whose meta kernel is C++ (a few microseconds), run directly.
_KERNELS = (
    _aten.mm.default, _aten.bmm.default, _aten.clone.default, _aten._softmax.default,
    _aten._log_softmax.default, _aten.silu.default, _aten.embedding.default,
    _aten.index_select.default,
)  # fmt: skip
_UNARY = (
    _aten.relu.default, _aten.gelu.default, _aten.tanh.default, _aten.sigmoid.default,
    _aten.neg.default, _aten.exp.default, _aten.sqrt.default, _aten.rsqrt.default,
    _aten.sin.default, _aten.cos.default, _aten.abs.default, _aten.log.default,
    _aten.reciprocal.default, _aten.erf.default,
)  # fmt: skip
_BINARY = (
    _aten.add.Tensor, _aten.sub.Tensor, _aten.mul.Tensor, _aten.div.Tensor,
    _aten.pow.Tensor_Scalar, _aten.maximum.default, _aten.minimum.default,
)  # fmt: skip

_RULES: dict[Any, Rule] = {}
_RULES.update(dict.fromkeys((*_VIEWS, *_KERNELS), _kernel_rule()))
_RULES[_aten._to_copy.default] = _kernel_rule(frozenset({"dtype", "non_blocking"}))
_RULES.update(dict.fromkeys(_UNARY, _unary))
_RULES.update(dict.fromkeys(_BINARY, _binary))
_RULES[_aten.addmm.default] = _addmm
_RULES[_aten.mean.dim] = _mean
_RULES[_aten.native_layer_norm.default] = _layer_norm
_RULES[_aten.cat.default] = _cat
