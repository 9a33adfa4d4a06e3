"""Statistics of a tensor at the cost of a few memory passes and one host transfer.

Measured on a (8, 256, 56, 56) float32 tensor on 2 CPU cores (see bench/README.md):
`sum` 0.8 ms, `dot` 0.8 ms, `aminmax` 1.2 ms, numpy's zero count 2.1 ms, while `x.std()`
takes 5.7 ms, `torch.std_mean` 21 ms and `torch.count_nonzero(x)` 17 ms. So the mean comes
from a sum, the variance from a sum of squares (falling back to `torch.std` when the formula
would lose precision), zeros are counted only when the range includes 0, and NaN/Inf only
when a reduction came out non-finite. The histogram is built from a deterministic strided
sample: never the global RNG, which would change the user's training. On a GPU the numbers
travel to the host in one transfer.

Nothing here makes a dense copy of a tensor: a broadcast view (stride 0, from `expand`) has
the statistics of the part that holds each value once, and integer, bool and non-finite
tensors are converted to float64 in bounded chunks. The reads run on plain tensors, with
torch functions disabled: a user's tensor subclass or torch function mode sees none of them.

The parts: `stats_sample` (the strided sample and its histogram), `stats_chunks` (any real
tensor read in float64 chunks), `device_stats` (statistics left on an accelerator and read
later, together).
"""

from __future__ import annotations

import math

import torch

from inspector.engine import native
from inspector.engine.capture import stats_chunks
from inspector.engine.capture.stats_chunks import chunked_stats, count_zeros
from inspector.engine.capture.stats_sample import HIST_BINS, SAMPLE_SIZE, histogram, sample
from inspector.engine.records import Stats, positional_builder

# When the sum of squares exceeds the centred sum of squares by more than this, the formula
# sum(x^2) - n*mean^2 would lose digits in this accumulation dtype: use torch.std instead.
_CANCELLATION_LIMIT = {torch.float32: 1e2, torch.float64: 1e8}

_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_function_mode_on = torch._C._is_torch_function_mode_enabled
_PLAIN_DISPATCH = torch.Tensor.__torch_dispatch__


def foreign(t: torch.Tensor) -> bool:
    """Whether reading `t` could reach user code: a subclass, or a torch function mode."""
    return type(t) is not torch.Tensor or _function_mode_on()


def dispatches_to_python(t: torch.Tensor) -> bool:
    """A subclass that handles every op in Python (`__torch_dispatch__`: DTensor, a wrapper
    tensor): reading its values would run that code, perhaps a collective. No statistics."""
    return type(t).__torch_dispatch__ is not _PLAIN_DISPATCH


def can_have_stats(t: torch.Tensor) -> bool:
    """Whether `compute_stats` gives numbers for this tensor (real values in memory)."""
    if foreign(t):
        if dispatches_to_python(t):
            return False
        with _NO_TORCH_FUNCTION():
            return _can_have_stats(t)
    return _can_have_stats(t)


def _can_have_stats(t: torch.Tensor) -> bool:
    return (
        t.layout == torch.strided
        and not t.is_nested
        and not t.is_meta
        and not t.is_complex()
        and t.numel() > 0
        and not _is_fake(t)
    )


def compute_stats(t: torch.Tensor) -> Stats | None:
    """Statistics of `t`; None for tensors without values (meta, fake, sparse, complex, empty)."""
    # The common case first, written out (a hook's microseconds): a plain float array in
    # CPU memory, no torch function mode on, read by the C kernel where it lies.
    if (
        type(t) is _TENSOR
        and t.is_cpu
        and t.dtype in _NATIVE_TYPES
        and t.layout is _STRIDED
        and not _function_mode_on()
        and not t.is_nested
        and t.is_contiguous()
        and not t.is_neg()
        and not t._is_zerotensor()
        and t.data_ptr() != 0
    ):
        read = native.reader()
        if read is not None:
            return _native_stats(read, t)
    if foreign(t):
        if dispatches_to_python(t):
            return None
        with _NO_TORCH_FUNCTION():
            return _stats(t.detach())  # a plain tensor: the rest reads it directly
    return _stats(t)


def _stats(t: torch.Tensor) -> Stats | None:
    if _plain_cpu_array(t) and t.numel() > 0:  # the common case: C reads them where they are
        read = native.reader()
        if read is not None:
            return _native_stats(read, t)
    if not _can_have_stats(t):
        return None
    with torch.no_grad():
        x = t.detach().resolve_neg()  # a lazily negated view: numpy and C need the values
        x, repeats = unexpanded(x)
        if x.is_floating_point():
            stats = _float_stats(x)
        elif x.dtype == torch.bool:
            stats = _bool_stats(x)
        # integer tensors: ids, positions; usually small. The chunk size is read from its
        # module at each call, so a change to it there holds here too.
        elif x.numel() <= stats_chunks.CHUNK:
            stats = _float_stats(x.to(torch.float64))
        else:
            stats = chunked_stats(x)
    return stats if repeats == 1 else _repeated(stats, repeats)


def unexpanded(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The part of a broadcast view that holds each of its values once (a narrow of every
    stride-0 dimension to one element), and how many times the view repeats that part.

    Every value of the part appears `repeats` times in the view, so the view's mean, min,
    max and zero fraction are the part's, and its counts are the part's times `repeats`.
    """
    repeats = 1
    for dim, (size, stride) in enumerate(zip(x.shape, x.stride(), strict=True)):
        if stride == 0 and size > 1:
            x = x.narrow(dim, 0, 1)
            repeats *= size
    return x, repeats


def _repeated(s: Stats, repeats: int) -> Stats:
    """The Stats of a view that holds each value of a tensor with Stats `s` `repeats` times."""
    finite = s.numel - s.nan - s.inf
    std = s.std
    if finite > 1:  # the same centred sum of squares, `repeats` times, over more values
        std = s.std * math.sqrt(repeats * (finite - 1) / (repeats * finite - 1))
    return Stats(
        numel=s.numel * repeats,
        mean=s.mean,
        std=std,
        min=s.min,
        max=s.max,
        nan=s.nan * repeats,
        inf=s.inf * repeats,
        zero_fraction=s.zero_fraction,
        histogram=tuple(c * repeats for c in s.histogram),
        histogram_range=s.histogram_range,
        sampled=s.sampled * repeats,
    )


def _float_stats(x: torch.Tensor) -> Stats:
    if _plain_cpu_array(x):
        read = native.reader()
        if read is not None:
            return _native_stats(read, x)
    n = x.numel()
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    total = torch.sum(x, dtype=acc)
    if x.is_contiguous() and x.dtype == acc:
        flat = x.view(-1)
        squares = torch.dot(flat, flat)
    else:
        squares = torch.linalg.vector_norm(x, dtype=acc).square()
    if x.is_contiguous():
        lo, hi = torch.aminmax(x)
    else:  # aminmax copies a strided tensor whole (a transposed output); amin, amax do not
        lo, hi = x.amin(), x.amax()
    strided = sample(x).to(torch.float64)
    if x.device.type == "cpu":  # reading a 0-dim CPU tensor is no device sync
        s, sq, mn, mx = float(total), float(squares), float(lo), float(hi)
        sampled = strided.numpy()
    else:  # one transfer for everything, not one per number
        packet = torch.cat([torch.stack([total, squares, lo, hi]).to(torch.float64), strided])
        values = packet.cpu().numpy()
        s, sq, mn, mx = (float(v) for v in values[:4])
        sampled = values[4:]
    if not (math.isfinite(s) and math.isfinite(mn) and math.isfinite(mx)):
        return _nonfinite_stats(x)
    mean = s / n
    std = _std(x, mean, sq, _CANCELLATION_LIMIT[acc])
    zeros = 0 if (mn > 0 or mx < 0) else count_zeros(x)
    hist = histogram(sampled, mn, mx)
    return Stats(
        numel=n,
        mean=mean,
        std=std,
        min=mn,
        max=mx,
        zero_fraction=zeros / n,
        histogram=hist,
        histogram_range=(mn, mx),
        sampled=len(sampled),
    )


_NATIVE_TYPES = (torch.float32, torch.float64)
_TENSOR = torch.Tensor
_STRIDED = torch.strided
_FLOAT64 = torch.float64
_isfinite = math.isfinite


def _std(x: torch.Tensor, mean: float, squares: float, limit: float) -> float:
    """The unbiased std from the sum of squares, or torch's when that formula would lose
    digits (`limit`) or the sum of squares overflowed."""
    n = x.numel()
    var_sum = squares - n * mean * mean
    if n < 2:
        return 0.0
    if not math.isfinite(squares) or var_sum * limit < squares:
        with torch.no_grad():  # ill-conditioned or overflowed: let torch do it carefully
            return float(x.std())
    return math.sqrt(max(var_sum, 0.0) / (n - 1))


def _plain_cpu_array(x: torch.Tensor) -> bool:
    """Whether `x` is an ordinary float array in CPU memory that C may read as it is: not a
    subclass (its data may live elsewhere), not a lazily negated view, not a zero tensor."""
    return (
        type(x) is torch.Tensor
        and x.dtype in _NATIVE_TYPES
        and x.is_cpu
        and x.layout is torch.strided
        and not x.is_nested
        and x.is_contiguous()
        and not x.is_neg()
        and not x._is_zerotensor()
        and x.data_ptr() != 0
    )


def _native_stats(read: native.Reader, x: torch.Tensor) -> Stats:
    """Sum, sum of squares, min, max, zeros and the sample's histogram in one call of the C
    kernel (engine/native), reading `x` where it lies (it may require grad: nothing here
    records an autograd op); a tensor with NaN or Inf goes the torch way, which counts them."""
    n = x.numel()
    step, count = (n // SAMPLE_SIZE, SAMPLE_SIZE) if n > SAMPLE_SIZE else (1, n)
    f64 = x.dtype is _FLOAT64
    total, squares, mn, mx, zeros, hist = read(f64, x.data_ptr(), n, step, count, HIST_BINS)
    if not (_isfinite(total) and _isfinite(mn) and _isfinite(mx)):
        with torch.no_grad():
            return _nonfinite_stats(x.detach())
    mean = total / n
    # _std, written out for the well-conditioned case
    var_sum = squares - n * mean * mean
    if n < 2:
        std = 0.0
    elif _isfinite(squares) and var_sum * (1e8 if f64 else 1e2) >= squares and var_sum >= 0:
        std = math.sqrt(var_sum / (n - 1))
    else:
        std = _std(x, mean, squares, _CANCELLATION_LIMIT[_FLOAT64 if f64 else torch.float32])
    # every field of Stats, in order
    return _new_stats(n, mean, std, mn, mx, 0, 0, zeros / n, hist, (mn, mx), count)


_new_stats = positional_builder(Stats)


def _nonfinite_stats(x: torch.Tensor) -> Stats:
    """Stats of a tensor holding NaN or Inf: counts of each, the rest over the finite values."""
    return chunked_stats(x)


def _bool_stats(x: torch.Tensor) -> Stats:
    """Stats of a mask from its count of True values, exactly (count_nonzero copies nothing,
    where a sum with a dtype or a conversion to float would copy the whole mask)."""
    n = x.numel()
    k = int(x.count_nonzero())
    lo, hi = (0.0 if k < n else 1.0), (1.0 if k > 0 else 0.0)
    sampled = sample(x).to(torch.float64).numpy()
    return Stats(
        numel=n,
        mean=k / n,
        std=math.sqrt(k * (n - k) / (n * (n - 1))) if n > 1 else 0.0,
        min=lo,
        max=hi,
        zero_fraction=(n - k) / n,
        histogram=histogram(sampled, lo, hi),
        histogram_range=(lo, hi),
        sampled=int(sampled.size),
    )


def _is_fake(t: torch.Tensor) -> bool:
    # FakeTensor (torch._subclasses) carries no data; import lazily, it is a private module.
    return type(t).__name__ == "FakeTensor"
