"""Records of values: a tensor's statistics and description, structured values, and what
the backward pass and an activation's units add to a call. Frozen, slotted, no live objects."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, Union

_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary statistics of one tensor.

    `mean`, `std`, `min` and `max` are taken over the finite values; `nan` and `inf` count the
    others. `std` is the unbiased estimate, as `torch.std` computes it (0 for a single value).
    The histogram counts a deterministic strided sample of `sampled` values in
    `histogram_range` (the full tensor's finite min and max), so it costs the same for every
    tensor size.
    """

    numel: int
    mean: float
    std: float
    min: float
    max: float
    nan: int = 0
    inf: int = 0
    zero_fraction: float = 0.0
    histogram: tuple[int, ...] = ()
    histogram_range: tuple[float, float] = (0.0, 0.0)
    sampled: int = 0

    @property
    def finite(self) -> bool:
        """True when the tensor holds no NaN and no Inf."""
        return self.nan == 0 and self.inf == 0


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """What is known about one tensor: shape, dtype, device and (optionally) statistics.

    `producer` is the position in `Trace.calls` of the innermost call that returned this
    tensor, and `view_of` the producer of the tensor this one is a view of (for example the
    pool output that a `view(-1, 216)` reshaped), so a diagnosis can say where a dimension
    came from.
    """

    shape: tuple[int, ...]
    dtype: str
    device: str = "cpu"
    requires_grad: bool = False
    stats: Stats | None = None
    layout: str = "strided"
    contiguous: bool = True
    producer: int | None = None
    view_of: int | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __str__(self) -> str:
        return f"{format_shape(self.shape)} {self.dtype}"


@dataclass(frozen=True, slots=True)
class Struct:
    """A mapping-like value (dict, namedtuple, dataclass) described field by field, in order."""

    type: str
    fields: tuple[tuple[str, Value], ...]

    def __getitem__(self, key: str) -> Value:
        for name, value in self.fields:
            if name == key:
                return value
        raise KeyError(key)

    def keys(self) -> list[str]:
        return [name for name, _ in self.fields]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.fields)


# A described value: tensors become TensorInfo, sequences tuples, mappings and records Structs,
# None/bool/int/float stay as they are, and anything else becomes a short repr string.
Value = Union[TensorInfo, Struct, tuple["Value", ...], None, bool, int, float, str]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class Gradient:
    """What the backward pass brought to one call.

    `outputs` holds the statistics of the gradient of each output tensor, in the order of
    `tensors_in(call.outputs)` (None where no gradient reached that tensor). `params` gives,
    for each of the module's own parameters, its name, the norm of its gradient as autograd
    accumulates it (summed over every call of the module in the pass) and its own norm.
    `order` counts when the backward pass first reached this call (0 is the first, the call
    nearest the loss).
    """

    outputs: tuple[Stats | None, ...] = ()
    params: tuple[tuple[str, float, float], ...] = ()
    order: int = -1

    @property
    def output(self) -> Stats | None:
        """The gradient of the first output tensor that received one."""
        return next((s for s in self.outputs if s is not None), None)

    @property
    def finite(self) -> bool:
        """No NaN or Inf in any output gradient or parameter gradient norm."""
        outs = all(s is None or s.finite for s in self.outputs)
        return outs and all(math.isfinite(g) for _, g, _ in self.params)

    def relative(self, name: str = "weight") -> float | None:
        """|grad| / |param| of parameter `name`: how far one unit-rate step would move it."""
        for pname, grad, size in self.params:
            if pname == name:
                return grad / size if size > 0 else None
        return None


@dataclass(frozen=True, slots=True)
class Units:
    """Per-unit facts of an activation's output (ReLU family, sigmoid, tanh).

    Units are the channels of an (N, C, ...) map, or the features of an (N, F) or (N, T, F)
    tensor. `dead` lists the units that are zero for every sample and position (ReLU
    family; measured only when the output is mostly zeros). `saturated` is the fraction of
    outputs within 1e-3 of the function's bounds (sigmoid, tanh).
    """

    axis: int
    count: int
    dead: tuple[int, ...] = ()
    saturated: float | None = None


def format_shape(shape: tuple[int, ...]) -> str:
    """`(4, 3, 32, 32)`; a 1-tuple keeps its comma: `(10,)`."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def tensors_in(value: Value) -> Iterator[TensorInfo]:
    """Every TensorInfo in a described value, depth first, in order."""
    if isinstance(value, TensorInfo):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, Struct):
        for _, item in value.fields:
            yield from tensors_in(item)


def first_tensor(value: Value) -> TensorInfo | None:
    """The first TensorInfo in a described value, or None."""
    if isinstance(value, TensorInfo):  # most values: no generator to make
        return value
    return next(tensors_in(value), None)


def positional_builder(cls: type[_R]) -> Callable[..., _R]:
    """A constructor of the frozen record class `cls` taking every field, in order, by
    position: `build(*values) == cls(*values)`, in about 40% of the time. A frozen
    dataclass's own `__init__` sets each field through `object.__setattr__`; this sets the
    slots directly. For the recorder, which builds two records per module call.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        scope[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's own descriptor
    lines = [f"def build({', '.join(names)}):", "    record = _new(_cls)"]
    lines += [f"    _set_{name}(record, {name})" for name in names]
    lines.append("    return record")
    exec("\n".join(lines), scope)
    build: Callable[..., _R] = scope["build"]
    return build
