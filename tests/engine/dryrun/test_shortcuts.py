"""The dry run's shortcuts against the fake mode they stand in front of.

Every op is run twice on the same fake operands, once answered by the shortcuts and once by
the fake mode alone, and the results must be the same in everything a later op or a reader
can see: type, shape, strides, storage offset, dtype, device, autograd state, which operand
it is a view of; or the same exception with the same message. The operands are drawn at
random (seeded) across dtypes, devices, layouts (contiguous, transposed, sliced, expanded,
size-1 dims with unusual strides, empty), autograd and grad modes, so the cases the rules
decline are covered as much as the ones they answer.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch

from inspector.engine.dryrun.fake import FakeRun
from inspector.engine.dryrun.shortcuts import _RULES

aten = torch.ops.aten

_DTYPES = (torch.float32, torch.float32, torch.float32, torch.float16, torch.bfloat16,
           torch.float64, torch.int64, torch.bool)  # fmt: skip


class Spec:
    """An operand to make inside a run: shape, layout, dtype, device, requires_grad."""

    def __init__(self, rng: random.Random, shape: tuple[int, ...] | None = None,
                 dtype: torch.dtype | None = None, layout: str | None = None) -> None:  # fmt: skip
        self.shape = shape if shape is not None else _shape(rng)
        self.dtype = dtype if dtype is not None else rng.choice(_DTYPES)
        self.layout = layout or rng.choice(("contiguous",) * 5 + ("transposed", "sliced",
                                            "expanded", "odd", "real", "cuda", "permuted",
                                            "heads", "channels last"))  # fmt: skip
        self.order = rng.sample(range(len(self.shape)), len(self.shape))
        self.grad = self.dtype.is_floating_point and rng.random() < 0.4

    def make(self, run: FakeRun | None, grad: bool = True) -> Any:
        """The operand inside `run`, or with `run=None` a real one of the same layout."""
        shape = list(self.shape)
        if self.layout == "real" and run is not None:
            with run.real():
                return self.make(None, grad)
        device = "cuda:0" if self.layout == "cuda" else "cpu"

        def empty(shape: Any) -> torch.Tensor:
            if run is None:
                return torch.zeros(shape, dtype=self.dtype)
            return run.empty(shape, self.dtype, device)

        if self.layout == "transposed" and len(shape) >= 2:
            x = empty([shape[-1], *shape[:-2], shape[-2]])
            x = x.movedim(0, -1).transpose(-1, -2) if len(shape) > 2 else x.t()
        elif self.layout == "permuted" and shape:
            x = empty([shape[i] for i in self.order])
            x = x.permute([self.order.index(i) for i in range(len(shape))])
        elif self.layout == "heads" and len(shape) >= 3:  # (B, T, H, D) read as (B, H, T, D)
            x = empty([*shape[:-3], shape[-2], shape[-3], shape[-1]]).transpose(-2, -3)
        elif self.layout == "channels last" and len(shape) == 4:
            x = empty([shape[0], shape[2], shape[3], shape[1]]).permute(0, 3, 1, 2)
        elif self.layout == "sliced" and shape:
            x = empty([*shape[:-1], shape[-1] * 2])[..., ::2]
        elif self.layout == "expanded" and shape:
            x = empty([1, *shape[1:]]).expand(shape)
        elif self.layout == "odd" and shape:
            strides = tuple(s * 3 + 1 for s in range(len(shape)))
            if run is None:
                x = torch.empty_strided(tuple(shape), strides, dtype=self.dtype).zero_()
            else:
                x = run.empty_strided(tuple(shape), strides, self.dtype, device)
        else:
            x = empty(shape)
        if self.grad and grad and x.is_leaf:
            x.requires_grad_(True)
        return x


def _shape(rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.choice((1, 1, 2, 3, 4, 0)) for _ in range(rng.choice((0, 1, 2, 2, 3, 3, 4))))


def _describe(value: Any, operands: list[Any]) -> Any:
    if isinstance(value, torch.Tensor):
        base = value._base
        return (
            type(value).__name__, tuple(value.shape), value.stride(), value.storage_offset(),
            value.dtype, str(value.device), value.requires_grad, value.is_leaf,
            type(value.grad_fn).__name__,
            next((i for i, o in enumerate(operands) if base is not None and base is o), None),
            next((i for i, o in enumerate(operands) if value is o), None),
            getattr(value, "constant", None) is not None,  # a fake that keeps its values
        )  # fmt: skip
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_describe(v, operands) for v in value]
    return repr(value)


def _run(call: Callable[..., Any], specs: list[Any], grad: bool, shortcuts: bool | None) -> Any:
    """The call's result described, in a run with or without shortcuts, or (None) for real
    (on the CPU, for its error: "cuda" operands are made as CPU tensors there)."""
    # autograd with a cuda fake needs a cuda build: without one it aborts the process
    cuda = any(isinstance(s, Spec) and s.layout == "cuda" for s in specs)
    grad = grad and not cuda

    def described(run: FakeRun | None) -> Any:
        operands = [s.make(run, grad=not cuda) if isinstance(s, Spec) else s for s in specs]
        try:
            with torch.set_grad_enabled(grad):
                out = call(*operands)
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc).split("\n")[0])
        return _describe(out, operands)

    if shortcuts is None:  # on the CPU: the errors in question are about shapes
        return described(None), 0
    with FakeRun(shortcuts=shortcuts) as run:
        result = described(run)
        if result[0] == "raised":
            return result, 0
        return result, run.shortcuts.answered if run.shortcuts is not None else 0


def _as_real(description: Any) -> Any:
    """A description without the tensor type and device (a fake's against a real one's)."""
    kinds = ("FakeTensor", "Tensor")
    if isinstance(description, tuple) and description and description[0] in kinds:
        return (*description[1:5], *description[6:-1])
    if (
        isinstance(description, tuple)
        and len(description) == 2
        and isinstance(description[1], list)
    ):
        return description[0], [_as_real(d) for d in description[1]]
    return description


def _dims(rng: random.Random, n: int) -> int:
    return rng.randrange(-n - 1, n + 1) if n else rng.choice((0, -1, 1))


def _cases(rng: random.Random) -> list[tuple[str, Callable[..., Any], list[Any]]]:
    """One random case of each rule's op: (name, call, operand specs)."""
    a = Spec(rng)
    n = len(a.shape)
    b = Spec(rng, shape=a.shape if rng.random() < 0.5 else None,
             dtype=a.dtype if rng.random() < 0.7 else None)  # fmt: skip
    # broadcasting partners: a suffix of a's shape, with some dims set to 1
    cut = rng.randrange(n + 1)
    bshape = tuple(1 if rng.random() < 0.3 else d for d in a.shape[cut:])
    c = Spec(rng, shape=bshape, dtype=a.dtype if rng.random() < 0.8 else None)
    twin = Spec(rng, shape=a.shape, dtype=a.dtype, layout=a.layout)  # laid out as a is
    twin.order = a.order
    scalar = rng.choice((2, 0.5, True, -3, 1.5, 2j))
    m, k, p = rng.choice((1, 2, 3)), rng.choice((1, 3, 4)), rng.choice((1, 2, 5))
    mdt = rng.choice((torch.float32, torch.float32, torch.float16, torch.float64))
    m1 = Spec(rng, shape=(m, k), dtype=mdt)
    m2 = Spec(rng, shape=(k if rng.random() < 0.85 else k + 1, p),
              dtype=mdt if rng.random() < 0.9 else None)  # fmt: skip
    bias = Spec(rng, shape=rng.choice(((p,), (1, p), (m, p), (m, 1), (k + 1,), ())),
                dtype=mdt if rng.random() < 0.9 else None)  # fmt: skip
    numel = 1
    for d in a.shape:
        numel *= d
    view_to = rng.choice(([numel], [-1], [1, numel], [numel, 1] if numel else [0, -1], [2, -1]))
    ids = Spec(rng, shape=(2, 3), dtype=torch.int64, layout="contiguous")
    table = Spec(rng, shape=(5, 4), dtype=rng.choice((torch.float32, torch.float16)))
    d = _dims(rng, n)
    cases: list[tuple[str, Callable[..., Any], list[Any]]] = [
        ("view", lambda x: aten.view.default(x, view_to), [a]),
        ("Tensor.view", lambda x: x.view(view_to), [a]),
        ("_unsafe_view", lambda x: aten._unsafe_view.default(x, view_to), [a]),
        ("transpose", lambda x: aten.transpose.int(x, d, _dims(rng, n)), [a]),
        ("t", lambda x: aten.t.default(x), [a]),
        ("unsqueeze", lambda x: aten.unsqueeze.default(x, d), [a]),
        ("squeeze.dim", lambda x: aten.squeeze.dim(x, d), [a]),
        ("squeeze.dims", lambda x: aten.squeeze.dims(x, [d]), [a]),
        ("squeeze", lambda x: aten.squeeze.default(x), [a]),
        (
            "slice",
            lambda x: aten.slice.Tensor(x, d, 0, rng.choice((1, 2)), rng.choice((1, 2))),
            [a],
        ),
        ("select", lambda x: aten.select.int(x, d, rng.choice((0, 1, -1))), [a]),
        ("split", lambda x: aten.split.Tensor(x, rng.choice((1, 2)), d), [a]),
        ("split_with_sizes", lambda x: aten.split_with_sizes.default(x, [1, 1], d), [a]),
        ("expand", lambda x: aten.expand.default(x, [2, *x.shape]), [a]),
        ("expand to", lambda x: aten.expand.default(x, [3] * n), [a]),
        ("permute", lambda x: aten.permute.default(x, list(range(n))[::-1]), [a]),
        ("alias", lambda x: aten.alias.default(x), [a]),
        ("detach", lambda x: aten.detach.default(x), [a]),
        ("Tensor.detach", lambda x: x.detach(), [a]),
        ("unbind", lambda x: aten.unbind.int(x, d), [a]),
        ("mm", lambda x, y: aten.mm.default(x, y), [m1, m2]),
        ("Tensor.mm", lambda x, y: x.mm(y), [m1, m2]),
        ("bmm", lambda x, y: aten.bmm.default(x.unsqueeze(0), y.unsqueeze(0)), [m1, m2]),
        ("clone", lambda x: aten.clone.default(x), [a]),
        ("softmax", lambda x: aten._softmax.default(x, d, False), [a]),
        ("Tensor.softmax", lambda x: x.softmax(d), [a]),
        ("log_softmax", lambda x: aten._log_softmax.default(x, d, False), [a]),
        ("silu", lambda x: aten.silu.default(x), [a]),
        ("embedding", lambda w, i: aten.embedding.default(w, i), [table, ids]),
        ("F.embedding", lambda w, i: torch.nn.functional.embedding(i, w), [table, ids]),
        ("index_select", lambda x, i: aten.index_select.default(x, 0, i.flatten()), [table, ids]),
        ("_to_copy", lambda x: aten._to_copy.default(x, dtype=rng.choice(_DTYPES)), [a]),
        ("Tensor.to", lambda x: x.to(rng.choice(_DTYPES)), [a]),
        ("addmm", lambda z, x, y: aten.addmm.default(z, x, y), [bias, m1, m2]),
        ("F.linear", lambda z, x, y: torch.nn.functional.linear(x, y.t(), z), [bias, m1, m2]),
    ]
    for op in ("relu", "gelu", "tanh", "sigmoid", "neg", "exp", "sqrt", "rsqrt", "sin", "cos",
               "abs", "log", "reciprocal", "erf"):  # fmt: skip
        cases.append((op, lambda x, op=op: getattr(aten, op).default(x), [a]))
        public = getattr(torch.Tensor, op, None) or getattr(torch.nn.functional, op)
        cases.append((f"Tensor.{op}", lambda x, f=public: f(x), [a]))
    for op in ("add", "sub", "mul", "div"):
        overload = getattr(aten, op).Tensor
        cases.append((op, lambda x, y, f=overload: f(x, y), [a, b]))
        cases.append((f"{op} broadcast", lambda x, y, f=overload: f(x, y), [a, c]))
        cases.append((f"{op} broadcast, reversed", lambda x, y, f=overload: f(y, x), [a, c]))
        cases.append((f"{op} scalar", lambda x, f=overload: f(x, scalar), [a]))
        cases.append((f"{op} same layout", lambda x, y, f=overload: f(x, y), [a, twin]))
    norm = rng.choice((a.shape[-1:], a.shape[-2:], a.shape, (3,), ()))
    w = Spec(rng, shape=tuple(norm), dtype=a.dtype if rng.random() < 0.8 else None,
             layout="contiguous")  # fmt: skip
    keep = rng.random() < 0.5
    dims = rng.choice(([-1], [0], [d], [0, -1], [], [n], [-1, -1]))
    e = Spec(rng, shape=tuple(rng.choice((0, 1, 3)) if i == d % max(n, 1) else s
                              for i, s in enumerate(a.shape)),
             dtype=a.dtype if rng.random() < 0.8 else None)  # fmt: skip
    empty = Spec(rng, shape=(0,), dtype=a.dtype if rng.random() < 0.8 else None,
                 layout="contiguous")  # fmt: skip
    cases += [
        ("mean", lambda x: aten.mean.dim(x, dims, keep), [a]),
        ("Tensor.mean", lambda x: x.mean(dims, keepdim=keep), [a]),
        (
            "layer_norm",
            lambda x, y, z: aten.native_layer_norm.default(x, list(norm), y, z, 1e-5),
            [a, w, w],
        ),
        (
            "layer_norm, no affine",
            lambda x: aten.native_layer_norm.default(x, list(norm), None, None, 1e-5),
            [a],
        ),
        ("F.layer_norm", lambda x, y: torch.nn.functional.layer_norm(x, norm, y), [a, w]),
        ("cat", lambda x, y: aten.cat.default([x, y], d), [a, e]),
        ("cat, three", lambda x, y: aten.cat.default([x, y, x], d), [a, e]),
        ("torch.cat", lambda x, y: torch.cat([x, y], d), [a, b]),
        ("cat after a legacy empty", lambda x, y: aten.cat.default([y, x], d), [a, empty]),
        ("cat onto a literal", lambda x: torch.cat([torch.tensor([]), x], d), [a]),
        ("cat of literals", lambda x: torch.cat([torch.tensor([1.0]), torch.tensor([2.0])]), [a]),
        ("add to a literal", lambda x: aten.add.Tensor(x, torch.tensor(2.0)), [a]),
        ("literal times literal", lambda x: torch.tensor([1.0, 2.0]) * torch.tensor(3.0), [a]),
        ("x + y", lambda x, y: x + y, [a, c]),
        ("x * scalar", lambda x: x * scalar, [a]),
        ("pow", lambda x: aten.pow.Tensor_Scalar(x, scalar), [a]),
        ("maximum", lambda x, y: aten.maximum.default(x, y), [a, c]),
        ("minimum", lambda x, y: aten.minimum.default(x, y), [a, b]),
    ]
    return cases


def _all_cases(seeds: range) -> list[tuple[int, int]]:
    return [(seed, i) for seed in seeds for i in range(len(_cases(random.Random(seed))))]


# CI draws 60 cases of every op; INSPECTOR_SHORTCUT_SEEDS=2000 for a long run
_SEEDS = range(int(os.environ.get("INSPECTOR_SHORTCUT_SEEDS", "60")))


@pytest.mark.parametrize("seed", _SEEDS)
def test_shortcuts_agree_with_the_fake_mode(seed: int) -> None:
    rng = random.Random(seed)
    grad = rng.random() < 0.7
    for name, call, specs in _cases(rng):
        state = rng.getstate()  # the call itself may draw (dims, dtypes): draw the same twice
        want, _ = _run(call, specs, grad, shortcuts=False)
        rng.setstate(state)
        got, _ = _run(call, specs, grad, shortcuts=True)
        if got != want:
            # torch's own kernel where the fake mode's Python reference differs from it (an
            # error it meets first, the strides of a view to the same shape): the result
            # must then be the one the real run gives
            rng.setstate(state)
            want, _ = _run(call, specs, grad, shortcuts=None)
            got, want = _as_real(got), _as_real(want)
        assert got == want, f"seed {seed}, {name}, {[getattr(s, '__dict__', s) for s in specs]}"


def test_every_rule_is_exercised_and_answers() -> None:
    """The random cases reach every op with a rule, and the rules answer the plain ones (a
    rule that always declined would agree with the fake mode and speed nothing up)."""
    reached: set[Any] = set()
    answered = 0

    class Watch(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            reached.add(func)
            return func(*args, **(kwargs or {}))

    for seed in _SEEDS:
        rng = random.Random(seed)
        grad = rng.random() < 0.7
        for _, call, specs in _cases(rng):
            if any(isinstance(s, Spec) and s.layout == "cuda" for s in specs):
                continue  # (see _run)
            with FakeRun() as run:
                operands = [s.make(run) if isinstance(s, Spec) else s for s in specs]
                before = run.shortcuts.answered
                try:
                    with torch.set_grad_enabled(grad), Watch():
                        call(*operands)
                except Exception:
                    pass
                answered += run.shortcuts.answered - before
    missing = set(_RULES) - reached
    assert not missing, f"no case reaches {sorted(map(str, missing))}"
    assert answered > 1000


def test_a_transformer_block_is_answered_mostly_by_the_shortcuts() -> None:
    """A GPT-style block of Linear, GELU, LayerNorm and attention: most of its ops are
    answered ahead of the fake mode, and check finds the same as without them."""
    import inspector

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0).eval()
    x = torch.randn(2, 5, 32)
    answered: list[int] = []
    original = FakeRun.__exit__

    def exit_(self: FakeRun, *exc: Any) -> None:
        answered.append(self.shortcuts.answered)
        original(self, *exc)

    try:
        FakeRun.__exit__ = exit_  # type: ignore[method-assign]
        result = inspector.check(layer, x)
        bad = inspector.check(layer, torch.randn(2, 5, 24))
    finally:
        FakeRun.__exit__ = original  # type: ignore[method-assign]
    assert result.ok and answered[0] >= 10
    assert [f.module for f in bad.errors] and not bad.ok


def test_a_fake_made_here_is_made_as_the_fake_mode_makes_it() -> None:
    """The shortcuts make fakes without FakeTensor's constructor: each carries the same state
    as one the fake mode made (its device, mode, empty memos) and behaves the same when its
    memory is asked for, on every device."""
    import warnings

    def data_ptr(t: torch.Tensor) -> str:
        with warnings.catch_warnings():  # (a deprecation warning, given once a process)
            warnings.simplefilter("ignore")
            try:
                t.data_ptr()
            except Exception as exc:
                return type(exc).__name__
        return "read"

    for device in ("cpu", "cuda:0"):
        with FakeRun() as run:
            x = run.empty([4, 6], torch.float32, device)
            ours = [x.relu(), x.view(6, 4), x + 1, x.t()]
        with FakeRun(shortcuts=False) as run:
            x = run.empty([4, 6], torch.float32, device)
            theirs = [x.relu(), x.view(6, 4), x + 1, x.t()]
        for a, b in zip(ours, theirs, strict=True):
            state = {k: v for k, v in vars(a).items() if k != "fake_mode"}
            assert state == {k: v for k, v in vars(b).items() if k != "fake_mode"}
            assert type(a) is type(b) and a.device == b.device == torch.device(device)
            assert data_ptr(a) == data_ptr(b)


def test_a_dispatch_mode_of_the_caller_still_sees_every_op() -> None:
    """A mode the caller entered around check (a FLOP counter, a tracer) is below the
    shortcuts on the stack: they step aside, and it sees the ops it saw before them."""
    import inspector

    seen: list[str] = []

    class Count(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with Count():
        result = inspector.check(model, torch.randn(3, 4))
    assert result.ok
    assert "aten.relu.default" in seen and "aten.addmm.default" in seen


def test_a_compiled_submodule_runs_as_written_in_the_dry_run() -> None:
    """torch.compile'd children are not compiled on fakes while the shortcuts' mode is on
    (dynamo leaves frames alone under a dispatch mode): the dry run goes through them as
    written, and finds the mismatch after them."""
    import inspector

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(8, 16)
            self.b = torch.compile(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(16, 4)),
                                   backend="eager")  # fmt: skip
            self.c = torch.nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.b(self.a(x)))

    net = Net()
    compiled = net.b
    result = inspector.check(net, torch.randn(2, 8))
    assert [f.module for f in result.errors] == ["c"]
    assert "4" in result.errors[0].summary and net.b is compiled
