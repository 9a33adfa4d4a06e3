"""The data-flow walk: a wrong dimension followed back to the line that made it, read from
the forward's source with shapes only. It must never run the user's code: no forward, hook,
property or helper of the user's is called while a failure is explained."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import inspector
from inspector.engine.diagnose.dataflow import Tensor, Walk, inputs_as_values, where_dim_became
from inspector.engine.records import Trace


class Counter:
    calls = 0


class Width:
    """A config object whose attribute is a property with a side effect."""

    @property
    def width(self) -> int:
        Counter.calls += 1
        return 16


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        Counter.calls += 1
        return torch.relu(self.fc(x))


class Folding(nn.Module):
    """Blocks in a loop, a helper method with a side effect, then a view that folds the
    positions into the batch before a per-sample loss."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = Width()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(16, 3)

    def pool(self, x):
        Counter.calls += 1
        return x

    def forward(self, x, y):
        for block in self.blocks:
            x = block(x)
        x = self.pool(x)
        if x.dim() == 3:
            x = x.reshape(-1, self.cfg.width)
        return F.cross_entropy(self.head(x), y)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(2, 5, 16), torch.randint(0, 3, (2,))


def _plain_count(hooks: list[str] | None = None) -> int:
    """The side effects of one plain pass: the counter, and the calls a process-wide hook
    sees."""
    Counter.calls = 0
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: hooks.append(type(m).__name__) if hooks is not None else None
    )
    try:
        Folding()(*_inputs())
    except ValueError:
        pass
    finally:
        handle.remove()
    return Counter.calls


def test_explain_names_the_fold_and_runs_no_user_code() -> None:
    plain_hooks: list[str] = []
    expected = _plain_count(plain_hooks)
    hook_calls: list[str] = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: hook_calls.append(type(m).__name__)
    )
    try:
        Counter.calls = 0
        model = Folding()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            with inspector.explain():
                model(*_inputs())
        except ValueError as error:
            note = "\n".join(getattr(error, "__notes__", []))
    finally:
        handle.remove()
    assert Counter.calls == expected  # the forward's own side effects, once, and no more
    assert hook_calls == plain_hooks  # no layer called again, not even on meta
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "x.reshape(-1, self.cfg.width)" in note, note
    assert "2*5 = 10" in note, note
    assert "(2, 16)" in note, note  # x[:, -1] keeps one row per sequence


def test_trace_gives_the_same_line_from_the_record() -> None:
    Counter.calls = 0
    t = inspector.trace(Folding(), *_inputs())
    diag = t.diagnosis
    assert diag is not None and diag.line is not None
    assert "x = x.reshape(-1, self.cfg.width)" in diag.line.text
    assert Counter.calls == _plain_count()


def test_walk_follows_loops_and_module_outputs() -> None:
    """Stop at the failing line of a real frame: every name has its walked shape and the
    wrong dim is traced to the reshape; the loop's blocks are walked, not run."""
    model = Folding()
    x, y = _inputs()
    try:
        model(x, y)
    except ValueError as error:
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code is not Folding.forward.__code__:
            tb = tb.tb_next
        assert tb is not None
        Counter.calls = 0
        args, kwargs = inputs_as_values((x, y), {})
        stopped = Walk(Trace([]), []).frame(tb.tb_frame, tb.tb_lineno, None, args, kwargs)
        assert Counter.calls == 0
    assert stopped is not None
    x_now = stopped.env["x"]
    assert isinstance(x_now, Tensor) and x_now.shape == (10, 16)
    change = where_dim_became(x_now, 0, 10)
    assert change is not None
    assert change.before.shape == (2, 5, 16)
    assert change.step.expr == "x.reshape(-1, self.cfg.width)"
    history = [t.step.expr for t in change.before.lineage() if t.step is not None]
    # pool returns its input as it is: no step of its own; the second block's, inside it
    assert history[:3] == ["block(x)", "torch.relu(self.fc(x))", "self.fc(x)"]


def test_a_seq_first_hidden_state_is_named() -> None:
    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(8, 16, num_layers=3, batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x, y):
            _, h = self.rnn(x)
            return F.cross_entropy(self.head(h.reshape(-1, 16)), y)

    try:
        with inspector.explain():
            Classifier()(torch.randn(5, 7, 8), torch.randint(0, 4, (5,)))
    except ValueError as error:
        note = "\n".join(error.__notes__)
    assert "num_layers*directions=3" in note, note
    assert "h_n[-1] gives (5, 16)" in note, note
    assert "head (Linear) then gives (5, 4)" in note, note


class TwoHeads(nn.Module):
    """fc1 is sized for 100 features but gets 80, and fc2 is sized for 64 while fc1 makes 50:
    resizing fc1 alone leaves the pass failing at fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(100, 50)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_a_second_mismatch_after_the_fix_is_named_and_the_fix_kept() -> None:
    diag = inspector.trace(TwoHeads(), torch.randn(2, 80)).diagnosis
    assert diag is not None and diag.module == "fc1"
    assert diag.fixes[0] == "fc1 = nn.Linear(80, 50)", str(diag)
    text = str(diag)
    assert "the pass gets further, and then `self.fc2(" in text
    assert "Linear(in_features=64, out_features=10, bias=True) gets (2, 50)" in text  # in numbers
    try:
        with inspector.explain():
            TwoHeads()(torch.randn(2, 80))
    except RuntimeError as error:
        note = "\n".join(error.__notes__)
    assert "(a second mismatch)" in note, note


def test_a_fix_after_which_the_same_layer_fails_is_not_offered(monkeypatch) -> None:
    """A fix whose numbers were wrong would leave the layer failing: the walk with the fixed
    layer finds it, and the fix is not shown."""
    from inspector.engine.diagnose import errors, linear

    def wrong(ctx):
        ex = linear.explain_linear(ctx)
        if ex is not None:
            ex.fixes.clear()
            ex.replacements.clear()
            ex.replace_layer("fc1 = nn.Linear(81, 50)", ctx.module, in_features=81)
        return ex

    families = tuple(wrong if f is linear.explain_linear else f for f in errors.FAMILIES)
    monkeypatch.setattr(errors, "FAMILIES", families)
    diag = inspector.trace(TwoHeads(), torch.randn(2, 80)).diagnosis
    assert diag is not None and not diag.fixes, str(diag)
    assert "fc1 = nn.Linear(81, 50) does not fix it" in str(diag)


def test_a_fix_that_holds_says_so_with_the_output() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 20, 5)
            self.fc1 = nn.Linear(500, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.max_pool2d(self.conv(x), 2).flatten(1)
            return self.fc2(F.relu(self.fc1(x)))

    diag = inspector.trace(Net(), torch.randn(4, 1, 12, 12)).diagnosis
    assert diag is not None
    assert "fc1 = nn.Linear(320, 50)" in diag.fixes[0]
    assert "with fc1 = nn.Linear(320, 50) the forward runs to its output (4, 10)" in str(diag)


class Seeder(nn.Module):
    """A forward that sets process state (the RNG seed, the default dtype) before it fails."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        torch.manual_seed(123)
        torch.set_default_dtype(torch.float32)
        noise = torch.randn(x.shape)
        return self.out(self.fc(x + noise))


def test_the_walk_leaves_process_state_as_the_plain_run_left_it() -> None:
    """The walk evaluates torch's tensor math on meta tensors, never a function that sets
    state: after explain(), the RNG is where the plain failing run left it."""
    torch.manual_seed(7)
    with pytest.raises(RuntimeError):
        Seeder()(torch.randn(2, 4))
    plain = torch.get_rng_state().clone()
    torch.manual_seed(7)
    with pytest.raises(RuntimeError) as raised, inspector.explain():
        Seeder()(torch.randn(2, 4))
    assert torch.equal(torch.get_rng_state(), plain)
    assert "out expects 5 input features" in raised.value.__notes__[0]


class SumOverAMissingDim(nn.Module):
    """A batched input and a dim the tensor never had: not a missing batch dim."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).softmax(dim=2)


def test_a_dim_out_of_range_blames_the_input_only_when_a_batch_dim_fixes_the_pass() -> None:
    diag = inspector.trace(SumOverAMissingDim(), torch.randn(5, 4)).diagnosis
    assert diag is not None and diag.code == "dim-range", str(diag)
    assert "no batch dim" not in str(diag)
    assert diag.fixes == ("use a dim (5, 3) has: -2..1",)
