"""What describing a live value promises: records hold values (never the user's objects),
objects are seen through their tensors, the inspector's own reads allocate no dense copy of
a broadcast view and are invisible to tensor subclasses, no weakref callback lands on a user
tensor, and a saved trace is read back strictly."""

from __future__ import annotations

import enum
import gc
import io
import json
import subprocess
import sys
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Normal
from torch.overrides import TorchFunctionMode

import inspector
from inspector.engine.capture import stats_chunks as stats_module
from inspector.engine.capture.describe import MAX_ITEMS, Describer, live_tensors
from inspector.engine.capture.stats import compute_stats, unexpanded
from inspector.engine.capture.stats_chunks import chunks
from inspector.engine.capture.tensor_registry import TensorRegistry
from inspector.engine.capture.values import ValueStore
from inspector.engine.records import Stats, Struct, TensorInfo, tensors_in
from inspector.engine.records.serialize import TraceFormatError

_PLAIN = (type(None), bool, int, float, str, TensorInfo, Struct, tuple)


def _assert_only_values(value: Any) -> None:
    """Every part of a record is one of the record types exactly: no subclass, no object."""
    assert type(value) in _PLAIN, f"{type(value).__name__} kept in a record"
    if type(value) is tuple:
        for item in value:
            _assert_only_values(item)
    elif type(value) is Struct:
        assert type(value.type) is str
        for name, item in value.fields:
            assert type(name) is str
            _assert_only_values(item)


# -- 1. records hold values --------------------------------------------------------------


class IntHoldingTensor(int):
    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__()
        self.tensor = tensor

    def __getitem__(self, val: int) -> torch.Tensor:
        return self.tensor * val


class ReturnsIntHoldingTensor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, IntHoldingTensor]:
        return {"foo": IntHoldingTensor(self.linear(torch.ones(3)))}


def test_an_int_subclass_holding_a_tensor_is_described_through_the_tensor() -> None:
    t = inspector.trace(ReturnsIntHoldingTensor(), {})
    out = t.calls[0].outputs
    assert isinstance(out, Struct)
    foo = out["foo"]
    assert isinstance(foo, Struct) and foo.type == "IntHoldingTensor"
    tensor = foo["tensor"]
    assert isinstance(tensor, TensorInfo) and tensor.shape == (1,) and tensor.requires_grad
    assert tensor.producer == t.find("linear").seq
    for call in t.calls:
        _assert_only_values(call.inputs)
        _assert_only_values(call.outputs)


class Color(enum.IntEnum):
    RED = 1


class Loud(int):
    """Every method a describer might be tempted to call fails."""

    def __repr__(self) -> str:
        raise AssertionError("repr called")

    __str__ = __repr__

    def __int__(self) -> int:
        raise AssertionError("__int__ called")

    def __index__(self) -> int:
        raise AssertionError("__index__ called")


class LoudStr(str):
    def __str__(self) -> str:
        raise AssertionError("__str__ called")


class LoudList(list):  # type: ignore[type-arg]
    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("__getitem__ called")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Loud(7), 7),
        (Color.RED, 1),
        (np.float64(2.5), 2.5),
        (LoudStr("text"), "text"),
        ([Loud(3), np.float64(0.5)], (3, 0.5)),
        (LoudList([1, 2]), (1, 2)),
    ],
    ids=["int-subclass", "int-enum", "numpy-float", "str-subclass", "in-a-list", "list-subclass"],
)
def test_subclasses_of_numbers_and_strings_become_plain_values(value: Any, expected: Any) -> None:
    described = Describer(stats=False).describe(value)
    assert described == expected
    _assert_only_values(described)


def test_keys_and_names_are_plain_strings() -> None:
    described = Describer(stats=False).describe({LoudStr("k"): 1, Loud(2): 2, (1, 2): 3})
    assert isinstance(described, Struct)
    assert described.keys() == ["k", "2", "<tuple>"]
    _assert_only_values(described)


# -- 2. objects with tensor attributes ---------------------------------------------------


class CategoricalHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=torch.log_softmax(self.linear(x), -1))


class NormalHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean, self.std = nn.Linear(10, 5), nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> Normal:
        return Normal(self.mean(x), nn.functional.softplus(self.std(x)))


class Box:
    def __init__(self, tensors: torch.Tensor) -> None:
        self.tensors = tensors


class NestedBoxes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        return {"foo": ({"bar": [Box(self.lin(x))]},)}


def test_distribution_outputs_are_described_through_their_parameters() -> None:
    t = inspector.trace(CategoricalHead(), torch.rand(1, 10))
    out = t.calls[0].outputs
    assert isinstance(out, Struct) and out.type == "Categorical"
    assert out.keys() == ["logits"]  # the public parameter; `_param` is the same tensor
    assert isinstance(out["logits"], TensorInfo) and out["logits"].shape == (1, 5)

    t = inspector.trace(NormalHead(), torch.rand(2, 10))
    out = t.calls[0].outputs
    assert isinstance(out, Struct) and out.type == "Normal"
    assert [(k, v.shape) for k, v in out.fields if isinstance(v, TensorInfo)] == [
        ("loc", (2, 5)),
        ("scale", (2, 5)),
    ]
    assert out["loc"].producer == t.find("mean").seq  # type: ignore[union-attr]


def test_a_user_object_deep_in_containers_is_described_through_its_tensors() -> None:
    t = inspector.trace(NestedBoxes(), torch.ones(10))
    box = t.calls[0].outputs["foo"][0]["bar"][0]  # type: ignore[index]
    assert isinstance(box, Struct) and box.type == "Box"
    assert isinstance(box["tensors"], TensorInfo) and box["tensors"].shape == (10,)


class Guarded:
    """Tensors in the instance dict and in slots of a base; properties and __getattr__ that
    record being called."""

    calls: list[str] = []

    def __init__(self) -> None:
        self.hidden = torch.zeros(2, 3)
        self.step = 4
        self._private = torch.ones(1)

    @property
    def computed(self) -> torch.Tensor:
        Guarded.calls.append("property")
        return torch.ones(9)

    def __getattr__(self, name: str) -> Any:
        Guarded.calls.append(f"__getattr__({name})")
        raise AttributeError(name)


class Slotted:
    __slots__ = ("__secret", "unset", "weights")

    def __init__(self) -> None:
        self.weights = torch.ones(4)
        self.__secret = torch.ones(5)


class PrivateOnly:
    def __init__(self) -> None:
        self._t = torch.ones(3)


class SecretSlot:
    __slots__ = ("__t",)

    def __init__(self) -> None:
        self.__t = torch.ones(2)


class NoTensors:
    def __init__(self) -> None:
        self.size = 3


@dataclass
class Output:
    logits: torch.Tensor
    loss: Any = None

    @property
    def extra(self) -> torch.Tensor:
        raise AssertionError("property called")


def test_objects_are_read_from_what_they_store_without_running_their_code() -> None:
    Guarded.calls.clear()
    describe = Describer(stats=False).describe
    guarded = describe(Guarded())
    assert Guarded.calls == []
    assert isinstance(guarded, Struct) and guarded.keys() == ["hidden", "step"]
    assert guarded["step"] == 4

    slotted = describe(Slotted())
    assert isinstance(slotted, Struct)
    assert slotted.keys() == ["weights"]  # the public one holds a tensor: private ones hidden

    private = describe(PrivateOnly())  # only private attributes hold tensors: shown
    assert isinstance(private, Struct) and private.keys() == ["_t"]
    secret = describe(SecretSlot())
    assert isinstance(secret, Struct) and secret.keys() == ["_SecretSlot__t"]

    assert describe(NoTensors()) == "<NoTensors>"
    out = describe(Output(torch.ones(2), loss=torch.tensor(0.5)))
    assert isinstance(out, Struct) and out.keys() == ["logits", "loss"]
    assert describe(nn.Linear(2, 2)) == "<Linear>"  # a module is not a value


def test_live_tensors_lists_what_the_description_lists() -> None:
    value = {
        "dist": Normal(torch.zeros(3), torch.ones(3)),
        "box": [Box(torch.ones(2)), IntHoldingTensor(torch.ones(1))],
        "slots": Slotted(),
        "plain": (torch.zeros(1), NoTensors()),
    }
    described = Describer(stats=False).describe(value)
    live = list(live_tensors(value))
    infos = list(tensors_in(described))
    assert [tuple(t.shape) for t in live] == [i.shape for i in infos]
    assert len(live) == 6


class Chain:
    def __init__(self, depth: int) -> None:
        self.t = torch.ones(1)
        self.next = Chain(depth - 1) if depth else self  # the last one refers to itself


class Wide:
    def __init__(self) -> None:
        for i in range(500):
            setattr(self, f"t{i}", torch.ones(1))


def test_objects_are_described_within_the_depth_and_item_bounds() -> None:
    describe = Describer(stats=False).describe
    assert isinstance(describe(Chain(100)), Struct)  # stops at MAX_DEPTH, no recursion error
    wide = describe(Wide())
    assert isinstance(wide, Struct) and len(wide) == MAX_ITEMS


# -- 3. statistics of broadcast views ----------------------------------------------------


def _dense_reference(view: torch.Tensor) -> dict[str, float]:
    dense = view.contiguous().to(torch.float64)
    finite = dense[torch.isfinite(dense)]
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()) if finite.numel() > 1 else 0.0,
        "min": float(finite.min()),
        "max": float(finite.max()),
        "nan": int(torch.isnan(dense).sum()),
        "inf": int(torch.isinf(dense).sum()),
        "zero_fraction": float((dense == 0).sum()) / dense.numel(),
    }


def _assert_matches_dense(stats: Stats | None, view: torch.Tensor) -> None:
    assert stats is not None
    ref = _dense_reference(view)
    assert stats.numel == view.numel()
    assert (stats.nan, stats.inf) == (ref["nan"], ref["inf"])
    assert stats.min == ref["min"] and stats.max == ref["max"]
    assert stats.zero_fraction == pytest.approx(ref["zero_fraction"], rel=1e-12)
    assert stats.mean == pytest.approx(ref["mean"], rel=1e-6, abs=1e-9)
    assert stats.std == pytest.approx(ref["std"], rel=1e-6, abs=1e-9)
    assert sum(stats.histogram) == stats.sampled <= stats.numel


def _with_nan() -> torch.Tensor:
    x = torch.randn(1, 6, 1)
    x[0, 2, 0] = float("nan")
    x[0, 4, 0] = float("-inf")
    return x.expand(5, 6, 7)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(1, 5, 1, 7).expand(3, 5, 4, 7),
        lambda: torch.ones(1, 1, 9, 9, dtype=torch.bool).tril().expand(2, 4, 9, 9),
        lambda: torch.arange(12).reshape(1, 12).expand(6, 12),
        lambda: torch.randn(3).relu()[:, None].expand(3, 100).t(),
        lambda: torch.tensor(2.5).expand(10, 10),
        _with_nan,
    ],
    ids=["float", "bool-mask", "int-positions", "transposed", "one-value", "nan-inf"],
)
def test_stats_of_a_broadcast_view_equal_those_of_the_dense_tensor(make: Any) -> None:
    torch.manual_seed(0)
    view = make()
    stats = compute_stats(view)
    _assert_matches_dense(stats, view)
    core, repeats = unexpanded(view)
    assert core.numel() * repeats == view.numel()
    base = compute_stats(core)
    assert base is not None and stats is not None
    assert stats.histogram == tuple(c * repeats for c in base.histogram)


def test_stats_of_an_expanded_attention_mask_allocate_no_copy_of_it() -> None:
    # A (1, 1, T, T) mask expanded over 16 heads: 67M values in 4 MB. A dense float64 copy
    # would be 537 MB; the statistics must stay within a few chunks.
    script = """
import resource, torch
import inspector
from torch import nn
T = 2048
mask = torch.ones(1, 1, T, T, dtype=torch.bool).tril().expand(1, 16, T, T)
x = torch.randn(8, 8)
class Attention(nn.Module):
    def forward(self, x, mask):
        return x.masked_fill(~mask[0, 0, : x.shape[0], : x.shape[1]], 0.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = inspector.trace(Attention(), x, mask)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
s = t.calls[0].inputs[1].stats
print(grown, s.numel, s.mean)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    grown_mb, numel, mean = done.stdout.split()
    assert int(numel) == 16 * 2048 * 2048
    assert float(mean) == pytest.approx((2048 + 1) / (2 * 2048))
    assert int(grown_mb) < 64, done.stdout


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randint(-3, 4, (70, 90)),
        lambda: torch.randint(-3, 4, (90, 70)).t(),
        lambda: torch.rand(50, 130) > 0.3,
        lambda: (torch.rand(130, 50) > 0.3).t(),
        lambda: torch.where(torch.rand(64, 99) > 0.9, torch.nan, torch.randn(64, 99)),
        lambda: torch.where(torch.rand(99, 64) > 0.9, torch.inf, torch.randn(99, 64)).t(),
        lambda: torch.full((40, 40), torch.nan),
    ],
    ids=["int", "int-transposed", "bool", "bool-transposed", "nan", "inf-transposed", "all-nan"],
)
def test_large_integer_bool_and_non_finite_tensors_are_read_in_chunks(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(1)
    monkeypatch.setattr(stats_module, "CHUNK", 1000)  # so these small tensors take many chunks
    x = make()
    stats = compute_stats(x)
    if torch.isfinite(x.double()).any():
        _assert_matches_dense(stats, x)
    else:
        assert stats is not None and stats.nan == x.numel() and stats.mean != stats.mean


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.arange(10_000).reshape(100, 100),
        lambda: torch.arange(10_000).reshape(100, 100).t(),
        lambda: torch.arange(24_000).reshape(2, 3, 4000).permute(2, 0, 1),
        lambda: torch.arange(30_000).reshape(3, 10_000)[:, ::3],
        lambda: torch.arange(5000).reshape(5, 1000).t()[::2],
    ],
)
@pytest.mark.parametrize("size", [1, 7, 999, 1000])
def test_chunks_cover_each_element_once_in_order(make: Any, size: int) -> None:
    x = make()
    parts = list(chunks(x, size))
    assert all(p.numel() <= size for p in parts)
    assert torch.equal(torch.cat([p.reshape(-1) for p in parts]), x.reshape(-1))
    assert all(
        p.data_ptr() >= 0 and p.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        for p in parts
    )


# -- 4. the inspector's reads are invisible to tensor subclasses and modes ---------------


class Counted(torch.Tensor):
    ops: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        Counted.ops.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_subclass_sees_only_the_ops_of_the_plain_call() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.Flatten(), nn.Linear(16, 4))
    x = torch.randn(3, 8).as_subclass(Counted)
    Counted.ops.clear()
    model(x)
    plain = list(Counted.ops)
    Counted.ops.clear()
    t = inspector.trace(model, x)
    assert Counted.ops == plain == ["linear", "flatten", "linear"]
    info = t.calls[0].inputs[0]
    assert isinstance(info, TensorInfo) and info.stats is not None
    assert info.stats.mean == pytest.approx(float(x.as_subclass(torch.Tensor).mean()))


def test_describing_and_keeping_subclass_tensors_runs_no_op_of_theirs() -> None:
    x = (torch.randn(4, 6) * 0).as_subclass(Counted)  # zeros: the zero count runs too
    views = [x, x.t(), x[:, :2], x.int(), x > 0, x.expand(2, 4, 6)]
    Counted.ops.clear()
    describer = Describer()
    infos = [describer.describe(v) for v in views]
    store = ValueStore()
    store.keep(0, "out", tuple(views))
    assert Counted.ops == []
    assert all(isinstance(i, TensorInfo) and i.stats is not None for i in infos)
    assert all(type(store.get(0, "out", i)) is torch.Tensor for i in range(len(views)))


class Watching(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.seen.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_a_torch_function_mode_sees_no_read_of_the_describer() -> None:
    x, mask = torch.randn(5, 5), torch.ones(5, 5, dtype=torch.bool)
    value = (x, x.t(), mask, x.expand(3, 5, 5), x.int())
    with Watching() as mode:
        Describer().describe(value)
    assert mode.seen == []


# -- 5. no weakref callbacks on user tensors ---------------------------------------------


def test_described_tensors_carry_no_weakref_callback() -> None:
    # A callback would run inside the user's pass whenever a described tensor dies, and a
    # Ctrl+C landing in it is printed as "Exception ignored" and lost.
    tensors = [torch.randn(3), torch.randn(2, 2).t(), torch.ones(2, dtype=torch.bool)]
    describer = Describer()
    describer.describe({"a": tensors[0], "b": tensors[1:]})
    describer.describe(tensors[0] * 2)
    for t in tensors:
        assert describer.registry.lookup(t) is not None
        refs = weakref.getweakrefs(t)
        assert refs and [r.__callback__ for r in refs] == [None] * len(refs)


def test_the_registry_sweeps_dead_tensors_and_never_matches_a_new_one() -> None:
    registry = TensorRegistry()
    describer = Describer(stats=False, registry=registry)
    for _ in range(20_000):
        describer.describe(torch.ones(1))  # dies at once: its entry is dead
    assert len(registry) <= 2 * 1024 + 1
    kept = [torch.ones(1) for _ in range(3000)]
    for t in kept:
        describer.describe(t)
    gc.collect()
    assert all(registry.lookup(t) is not None for t in kept)  # live ones survive a sweep
    fresh = torch.ones(1)
    assert registry.lookup(fresh) is None


# -- 6. from_json: a ValueError with a reason for any malformed document -----------------


def _document() -> dict[str, Any]:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(7, 2))
    return json.loads(inspector.trace(model, torch.randn(3, 4)).to_json())


def _set(path: list[Any], value: Any) -> str:
    doc = _document()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_set(["findings", 0], 1), "finding must be an object"),
        (
            _set(["calls", 0, "inputs", 0, "stats", "histogram_range"], []),
            "histogram_range must have 2",
        ),
        (json.dumps(_document()).replace('"seq": 0', '"seq": 1e400', 1), "seq must be an int"),
        (
            _set(["calls", 0, "inputs", 0, "tensor", "shape", 0], 1e300),
            "dimension must be an integer",
        ),
        (
            json.dumps(_document()).replace(
                '"outputs": ',
                '"outputs": ' + '{"tuple": [' * 1000 + "0" + "]}" * 1000 + ', "_": ',
                1,
            ),
            "nested too deep",
        ),
        (
            json.dumps(_document()).replace(
                '"outputs": ', '"outputs": ' + '{"tuple": [' * 100 + "0" + "]}" * 100 + ', "_": ', 1
            ),
            "nested more than",
        ),
        ("[" * 100_000 + "]" * 100_000, "nested too deep"),
        (_set(["calls", 1, "depth"], 1e308), "depth must be an integer"),
        (_set(["calls", 1, "depth"], 10**18), "depth"),
        (_set(["findings", 0, "exception"], 1), "exception must be a string"),
        (_set(["calls", 0, "inputs", 0, "stats", "nan"], -1), "NaN count = -1 is out of range"),
        (_set(["calls", 0, "inputs", 0, "producer"], 99), "producer = 99 is out of range"),
        (_set(["findings", 0, "call"], 7), "call = 7 is out of range"),
        (_set(["calls", 0, "params"], 2.5), "params must be an integer"),
        (_set(["calls", 0, "inputs", 0, "tensor", "dtype"], ["float32"]), "dtype must be a string"),
        (
            '{"format": "torch-inspector-trace", "version": 1, "calls": [], "findings": [],'
            ' "error": {"type": 1, "message": ""}}',
            "'type' must be a string",
        ),
        ("1" * 5000, "invalid JSON"),
    ],
)
def test_from_json_rejects_a_malformed_document_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(TraceFormatError, match=reason) as caught:
        inspector.Trace.from_json(text)
    assert isinstance(caught.value, ValueError)


def test_an_accepted_document_renders() -> None:
    from rich.console import Console

    from inspector.reporting import print_trace

    t = inspector.Trace.from_json(json.dumps(_document()))
    out = io.StringIO()
    print_trace(t, Console(file=out, width=100))
    assert "in_features" in out.getvalue() or "Linear" in out.getvalue()
