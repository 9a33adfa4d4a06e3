"""Never harm the program being debugged: one regression test per known way it was harmed.

Each test runs the user's code plainly and under the inspector and asserts that the user
cannot tell the difference: the forward runs once, the hooks and the model are as they were,
the exception is the user's own, the output is the plain call's.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.overrides import TorchFunctionMode

import inspector
from inspector.engine.control.debugger import Debugger, Finished
from tests.helpers import (
    InterruptAtLine,
    assert_hooks_unchanged,
    global_hook_count,
    global_hooks_restored,
    hook_count,
    hooks_snapshot,
    message,
    min_recursion_limit,
    value,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with global_hooks_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def nest(depth: int, width: int = 3) -> nn.Module:
    """A Linear wrapped in `depth - 1` Sequentials: `depth` module levels."""
    m: nn.Module = nn.Linear(width, width)
    for _ in range(depth - 1):
        m = nn.Sequential(m)
    return m


def at_depth(k: int, fn: Callable[[], Any]) -> Any:
    """`fn()` called from `k` more stack frames."""
    return fn() if k == 0 else at_depth(k - 1, fn)


def debug_headless(d: Debugger) -> Finished:
    """Run a headless Debugger to its end, continuing at every pause."""
    event = d.start()
    for _ in range(100):
        if isinstance(event, Finished):
            return event
        event = d.cont()
    raise AssertionError("the Debugger did not finish in 100 continues")


def _run_script(code: str, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the diagnosis of a failure must not run the user's code again ---------------------------


class CountingFailing(nn.Module):
    """Counts its calls and doubles its input in place before failing in a view."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x.mul_(2)
        return self.fc(x.view(-1, 3))


def _failing_pass(how: str) -> tuple[int, float, int]:
    torch.manual_seed(0)
    model, x = CountingFailing(), torch.ones(2, 4)
    fired: list[str] = []
    handle = torch_module.register_module_forward_pre_hook(
        lambda m, a: fired.append(type(m).__name__)
    )
    try:
        if how == "trace":
            assert isinstance(inspector.trace(model, x).error, RuntimeError)
        elif how == "diagnose":
            inspector.diagnose(model, x)
        else:
            # pytest.raises outside: the exception must leave the inspector's block
            with (
                pytest.raises(RuntimeError, match="invalid for input of size"),
                contextlib.ExitStack() as stack,
            ):
                if how == "explain":
                    stack.enter_context(inspector.explain())
                elif how == "explain(model)":
                    stack.enter_context(inspector.explain(model))
                elif how == "attach":
                    stack.enter_context(redirect_stderr(io.StringIO()))
                    stack.enter_context(inspector.attach(model))
                model(x)
    finally:
        handle.remove()
    return model.calls, x[0, 0].item(), len(fired)


@pytest.mark.parametrize("how", ["trace", "diagnose", "explain", "explain(model)", "attach"])
def test_a_failing_pass_runs_its_forward_once(how: str) -> None:
    plain = _failing_pass("plain")
    assert plain == (1, 2.0, 1)
    assert _failing_pass(how) == plain, "(forward calls, x[0, 0], user's global hook calls)"


@pytest.mark.timeout(120)
def test_a_failing_call_under_a_global_session_is_explained_once() -> None:
    code = """
        import io, sys, warnings
        from contextlib import redirect_stderr
        import torch
        from torch import nn
        import inspector

        warnings.simplefilter("ignore")
        model, x = nn.Linear(3, 3), torch.randn(2, 4)

        def at_depth(k, fn):
            return fn() if k == 0 else at_depth(k - 1, fn)

        def failing_call():
            try:
                model(x)
                print("no exception")
            except RuntimeError as e:
                print("raised", str(e).splitlines()[0])

        def attached():
            log = io.StringIO()
            with redirect_stderr(log), inspector.attach():  # no model: every call hooked
                failing_call()
            return log.getvalue().count("torch-inspector: error")

        for k in range(4):  # a few frames more or less on the caller's stack
            print("attach", at_depth(k, attached))
        log = io.StringIO()
        with redirect_stderr(log):
            inspector.set_trace()
            failing_call()
        print("set_trace", log.getvalue().count("torch-inspector: error"))
    """
    run = _run_script(code, 100)
    assert run.returncode == 0, f"exit status {run.returncode}:\n{run.stderr[-2000:]}"
    lines = run.stdout.splitlines()
    raised = "raised mat1 and mat2 shapes cannot be multiplied (2x4 and 3x3)"
    assert lines[0::2] == [raised] * 5
    assert lines[1::2][:4] == ["attach 1"] * 4, "error stops logged for one failing call"
    assert lines[-1] in ("set_trace 0", "set_trace 1"), "error stops logged under set_trace()"


# -- deep models -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_deep_model_hitting_the_recursion_limit_under_trace_leaves_no_hooks() -> None:
    x = torch.randn(2, 3)
    need = min_recursion_limit(lambda: nest(200)(x))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(need + 20)  # the plain call runs; hooks add frames per level
    try:
        for k in range(0, 60, 4):  # the limit strikes at a different point of the hooks
            model = nest(200)
            before = hooks_snapshot(model)
            t = at_depth(k, lambda model=model: inspector.trace(model, x))
            assert_hooks_unchanged(before, hooks_snapshot(model))
            assert t.error is None or isinstance(t.error, RecursionError)
            model(x)  # the user's plain call still runs
    finally:
        sys.setrecursionlimit(old)


def _runs(how: str, depth: int) -> bool:
    model, x = nest(depth), torch.randn(2, 3)
    try:
        if how == "plain":
            at_depth(5, lambda: model(x))  # as many spare frames as an entry point takes
        elif how == "trace":
            return inspector.trace(model, x).error is None
        elif how == "explain":
            with inspector.explain():
                model(x)
        elif how == "attach":
            with redirect_stderr(io.StringIO()), inspector.attach(model):
                model(x)
        return True
    except RecursionError:
        return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["trace", "explain", "attach"])
def test_a_deep_model_that_runs_plainly_runs_under_the_inspector(how: str) -> None:
    lo, hi = 1, 1000
    while lo < hi:  # the deepest nesting the plain call runs at
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _runs("plain", mid) else (lo, mid - 1)
    assert lo > 50
    assert _runs(how, lo), f"nesting {lo} runs plainly but not under {how}"


# -- interrupts --------------------------------------------------------------------------------


class InterruptingRepr(nn.Linear):
    """Its nth extra_repr() raises KeyboardInterrupt: Ctrl+C while hooks are being added."""

    def __init__(self, nth: int) -> None:
        super().__init__(8, 8)
        self.nth, self.seen = nth, 0

    def extra_repr(self) -> str:
        self.seen += 1
        if self.seen == self.nth:
            raise KeyboardInterrupt
        return super().extra_repr()


def _enter(how: str, model: nn.Module, x: torch.Tensor) -> None:
    if how == "trace":
        inspector.trace(model, x)
    elif how == "diagnose":
        inspector.diagnose(model, x)
    elif how == "explain(model)":
        with inspector.explain(model):
            model(x)
    elif how == "attach":
        with redirect_stderr(io.StringIO()), inspector.attach(model):
            model(x)


@pytest.mark.parametrize("nth", [1, 2, 3])
@pytest.mark.parametrize("how", ["trace", "diagnose", "explain(model)", "attach"])
def test_ctrl_c_while_hooks_are_added_leaves_none(how: str, nth: int) -> None:
    layers = [InterruptingRepr(nth if i == 1 else 0) for i in range(3)]
    model = nn.Sequential(nn.Linear(8, 8), layers[0], nn.ReLU(), layers[1], layers[2])
    x = torch.randn(2, 8)
    before = hooks_snapshot(model)
    with contextlib.suppress(KeyboardInterrupt):
        _enter(how, model, x)
    assert_hooks_unchanged(before, hooks_snapshot(model))


class Interruptible(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.interrupt = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        if self.interrupt:
            raise KeyboardInterrupt
        return self.b(y)


def test_a_session_counts_passes_after_a_keyboardinterrupt_ends_one() -> None:
    model, x = Interruptible(), torch.randn(2, 4)
    log = io.StringIO()
    with redirect_stderr(log), inspector.attach(model, on_pass=5) as session:
        for step in range(12):
            model.interrupt = step == 0
            with contextlib.suppress(KeyboardInterrupt):
                model(x)
        passes, held = session.passes, len(session.recorder.calls)
    stops = [line for line in log.getvalue().splitlines() if line.startswith("torch-inspector")]
    assert passes == 12
    assert held == 3, "the recorder holds the calls of the current pass only"
    assert len(stops) == 1 and "pass 5" in stops[0], stops


class FailsAfterBlocks(nn.Module):
    def __init__(self, blocks: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(blocks)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).view(-1, 3)  # fails after every block ran


def user_hook(module: nn.Module, args: Any, output: Any) -> None:
    return None


def _explain_interrupted_at(nth: int | None) -> tuple[int, bool]:
    model, x = FailsAfterBlocks(), torch.randn(4, 8)
    for block in model.body:
        block.register_forward_hook(user_hook)
    before = hooks_snapshot(model)
    tracer = InterruptAtLine(nth)
    interrupted = False
    try:
        with tracer.installed(), inspector.explain():
            model(x)
    except RuntimeError:
        pass
    except KeyboardInterrupt:
        interrupted = True
    assert_hooks_unchanged(before, hooks_snapshot(model))
    assert {m.training for m in model.modules()} == {True}
    return tracer.lines, interrupted


@pytest.mark.timeout(60)
def test_ctrl_c_anywhere_in_explain_keeps_the_users_hooks() -> None:
    _explain_interrupted_at(None)  # warm caches, as a second call would find them
    total, _ = _explain_interrupted_at(None)
    assert total > 0
    step = max(1, total // 300)
    interrupted = 0
    for nth in range(1, total + 1, step):
        interrupted += _explain_interrupted_at(nth)[1]
    assert interrupted > 0


class Slow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(1.0)
        return x


@pytest.mark.timeout(30)
def test_ctrl_c_in_the_caller_of_a_debugger_releases_the_model() -> None:
    model = nn.Sequential(nn.Linear(4, 4), Slow(), nn.Linear(4, 2))
    x = torch.randn(2, 4)
    before = hooks_snapshot(model)
    d = Debugger(model, x, breakpoints=["2"], stop_at_start=False, timeout=5)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    interrupted = False
    try:
        timer.start()
        try:
            d.start()
        finally:
            timer.join()
    except KeyboardInterrupt:
        interrupted = True
    assert interrupted, "Ctrl+C reaches the caller"
    deadline = time.monotonic() + 3
    while hook_count(model) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_hooks_unchanged(before, hooks_snapshot(model))
    done = threading.Event()
    threading.Thread(target=lambda: (model(x), done.set()), daemon=True).start()
    assert done.wait(5), "the user's own model(x) afterwards blocks"


class RaisesKeyboardInterrupt(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.raised = KeyboardInterrupt()
        raise self.raised


@pytest.mark.timeout(30)
def test_a_keyboardinterrupt_in_forward_reaches_the_debuggers_caller() -> None:
    model = nn.Sequential(nn.Linear(4, 4), RaisesKeyboardInterrupt())
    x = torch.randn(2, 4)
    before = hooks_snapshot(model)
    d = Debugger(model, x, stop_at_start=False, timeout=5)  # a TimeoutError fails the test
    caught: BaseException | None = None
    try:
        finished = debug_headless(d)
        caught = finished.trace.error
    except KeyboardInterrupt as exc:
        caught = exc
    assert caught is model[1].raised
    d.join(5)
    assert_hooks_unchanged(before, hooks_snapshot(model))


# -- the Debugger's worker thread runs in the caller's context ---------------------------------


def _debugged(model: nn.Module, *args: Any) -> Any:
    return debug_headless(Debugger(model, *args, stop_at_start=False, timeout=10)).trace.output


scale: contextvars.ContextVar[float] = contextvars.ContextVar("scale", default=1.0)


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * scale.get() + torch.ones(4)  # a factory: default dtype


class Doubling(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        return out * 2 if func is torch.nn.functional.linear else out


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _scale(v: float) -> Iterator[None]:
    token = scale.set(v)
    try:
        yield
    finally:
        scale.reset(token)


CONTEXTS: dict[str, Callable[[], Any]] = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "autocast_bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    "function_mode": Doubling,
    "contextvar": lambda: _scale(3.0),
    "default_dtype": lambda: _default_dtype(torch.float64),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("context", list(CONTEXTS))
def test_the_debugger_runs_the_model_in_the_callers_torch_context(context: str) -> None:
    torch.manual_seed(0)
    model, x = Scaled(), torch.randn(2, 4)
    with CONTEXTS[context]():
        plain = model(x)
        debugged = _debugged(model, x)
    assert value(debugged) == value(plain)


@pytest.mark.timeout(60)
def test_a_hugging_face_model_under_no_grad_builds_no_graph_in_the_debugger() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, use_cache=False
    )
    torch.manual_seed(0)
    model = transformers.GPT2Model(config).eval()
    ids = torch.randint(0, 64, (2, 8))
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            plain = model(ids).last_hidden_state
            debugged = _debugged(model, ids).last_hidden_state
        assert value(debugged) == value(plain), context.__name__
        assert debugged.grad_fn is None and not debugged.requires_grad


# -- the user's exception, untouched -----------------------------------------------------------


class BadStrError(Exception):
    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.expected = expected

    def __str__(self) -> str:
        return f"expected {self.expected}, got {self.got}"  # type: ignore[attr-defined]


class RaisesBadStr(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x)
        self.raised = BadStrError(4)
        raise self.raised


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["trace", "diagnose", "check", "report", "Debugger", "explain"])
def test_an_exception_whose_str_fails_is_the_users_to_see(how: str) -> None:
    model, x = RaisesBadStr(), torch.randn(2, 3)
    with pytest.raises(BadStrError):
        model(x)
    plain_message = message(model.raised)
    assert plain_message.startswith("<str() raised AttributeError")
    before = hooks_snapshot(model)
    if how == "trace":
        error = inspector.trace(model, x).error
    elif how == "diagnose":
        inspector.diagnose(model, x)
        error = model.raised
    elif how == "check":
        inspector.check(model, x)
        error = model.raised
    elif how == "report":
        with redirect_stdout(io.StringIO()):
            error = inspector.report(model, x).error
    elif how == "Debugger":
        error = debug_headless(Debugger(model, x, stop_at_start=False, timeout=5)).trace.error
    else:
        with pytest.raises(BadStrError) as info, inspector.explain():
            model(x)
        error = info.value
    assert error is model.raised
    assert message(error) == plain_message
    assert_hooks_unchanged(before, hooks_snapshot(model))


def _frames(exc: BaseException) -> list[tuple[str, str, int | None]]:
    return [(f.filename, f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)][1:]


@pytest.mark.parametrize("scope", ["global", "model"])
def test_explain_leaves_the_traceback_as_the_plain_call_has_it(scope: str) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(7, 2)))
    x = torch.randn(3, 4)

    def call() -> Any:
        return model(x)

    with pytest.raises(RuntimeError) as plain:
        call()
    with (
        pytest.raises(RuntimeError) as explained,
        inspector.explain(model if scope == "model" else None),
    ):
        call()
    assert message(explained.value) == message(plain.value)
    assert _frames(explained.value) == _frames(plain.value)


# -- compiled and scripted modules -------------------------------------------------------------


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 32)
        self.b = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


@pytest.fixture
def quiet_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    torch._logging.set_logs(dynamo=logging.CRITICAL)
    try:
        yield
    finally:
        torch._logging.set_logs()
        torch._dynamo.reset()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("quiet_dynamo")
def test_a_compiled_model_runs_under_the_inspector_as_it_runs_plainly() -> None:
    torch.manual_seed(0)
    compiled = torch.compile(Net(), backend="eager")
    x = torch.randn(4, 16)
    plain = compiled(x)
    t = inspector.trace(compiled, x)
    assert t.error is None, repr(t.error)
    assert value(t.output) == value(plain)
    d = inspector.diagnose(compiled, x)
    assert d is None or d.kind != "error", str(d)
    assert inspector.check(compiled, x).errors == []
    with inspector.explain():
        assert value(compiled(x)) == value(plain)
    cold = torch.compile(nn.Sequential(nn.Linear(16, 8)), backend="eager")
    t = inspector.trace(cold, x)  # its first call is the traced one
    assert t.error is None, repr(t.error)
    assert value(t.output) == value(cold(x))
    assert hook_count(compiled) == hook_count(cold) == 0


class PartlyScripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Linear(4, 4)
        self.fc = torch.jit.script(nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class ScriptedEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _output_under(how: str, model: nn.Module, x: torch.Tensor) -> Any:
    if how == "trace":
        t = inspector.trace(model, x)
        assert t.error is None, repr(t.error)
        return t.output
    if how == "Debugger":
        finished = debug_headless(Debugger(model, x, stop_at_start=False, timeout=5))
        assert finished.trace.error is None, repr(finished.trace.error)
        return finished.trace.output
    if how == "check":
        result = inspector.check(model, x)
        assert result.errors == [], [str(f) for f in result.errors]
        return model(x)
    with contextlib.ExitStack() as stack:
        if how == "explain(model)":
            stack.enter_context(inspector.explain(model))
        elif how == "attach":
            stack.enter_context(redirect_stderr(io.StringIO()))
            stack.enter_context(inspector.attach(model))
        return model(x)


SCRIPTED: dict[str, Callable[[], nn.Module]] = {
    "scripted_child": PartlyScripted,
    "scripted_encoder": ScriptedEncoder,
    "scripted_root": lambda: torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU())),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["trace", "explain(model)", "attach", "Debugger", "check"])
@pytest.mark.parametrize("kind", list(SCRIPTED))
def test_a_model_with_scripted_modules_runs_under_the_inspector(kind: str, how: str) -> None:
    torch.manual_seed(0)
    model, x = SCRIPTED[kind](), torch.rand(3, 4)
    plain = model(x)
    before = hooks_snapshot(model)
    out = _output_under(how, model, x)
    assert_hooks_unchanged(before, hooks_snapshot(model))
    assert value(out) == value(plain)


# -- the garbage collector -----------------------------------------------------------------


class RecordsGC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.gc_enabled: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gc_enabled.append(gc.isenabled())
        return self.fc(x)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["trace", "diagnose", "report", "Debugger", "explain", "attach"])
def test_the_forward_runs_with_the_garbage_collector_as_the_caller_left_it(how: str) -> None:
    assert gc.isenabled()
    model, x = RecordsGC(), torch.randn(3, 2)
    if how == "trace":
        inspector.trace(model, x)
    elif how == "diagnose":
        inspector.diagnose(model, x)
    elif how == "report":
        with redirect_stdout(io.StringIO()):
            inspector.report(model, x)
    elif how == "Debugger":
        debug_headless(Debugger(model, x, stop_at_start=False, timeout=5))
    else:
        _output_under("explain(model)" if how == "explain" else how, model, x)
    assert model.gc_enabled == [True]
    assert gc.isenabled()


# -- the package's functions, every time -------------------------------------------------------


@pytest.mark.timeout(120)
def test_report_and_debug_work_on_every_call_without_a_terminal() -> None:
    code = """
        import io
        from contextlib import redirect_stdout
        import torch
        from torch import nn
        import inspector

        model, x = nn.Linear(4, 2), torch.randn(3, 4)
        broken = nn.Sequential(nn.Linear(4, 8), nn.Linear(7, 2))
        for i in range(2):
            for name, call in [("debug ok", lambda: inspector.debug(model, x)),
                               ("debug broken", lambda: inspector.debug(broken, x)),
                               ("report ok", lambda: inspector.report(model, x))]:
                try:
                    with redirect_stdout(io.StringIO()):
                        r = call()
                    print(name, type(r).__name__)
                except Exception as e:
                    print(name, "raised", type(e).__name__, str(e).splitlines()[0])
    """
    run = _run_script(code, 100)
    assert run.returncode == 0, run.stderr[-2000:]
    broken = (
        "debug broken raised RuntimeError mat1 and mat2 shapes cannot be multiplied (3x8 and 7x2)"
    )
    assert run.stdout.splitlines() == ["debug ok Tensor", broken, "report ok Trace"] * 2


def test_the_global_hook_helpers_see_a_leak() -> None:
    """The helpers these tests rest on notice a hook left behind."""
    model = nn.Linear(2, 2)
    before = hooks_snapshot(model)
    handle = torch_module.register_module_forward_hook(user_hook)
    try:
        assert global_hook_count() >= 1
        with pytest.raises(AssertionError, match="hooks changed"):
            assert_hooks_unchanged(before, hooks_snapshot(model))
    finally:
        handle.remove()
    model.register_forward_hook(user_hook)
    with pytest.raises(AssertionError, match="hooks changed"):
        assert_hooks_unchanged(before, hooks_snapshot(model))
