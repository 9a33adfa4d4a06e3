"""`inspector.check`: a dry run on fake tensors that reports every mismatch in one pass.

No memory for activations and no real compute. When a layer fails, its finding is recorded
and the run goes on with the output the layer declares (Linear: out_features; Conv: the
spatial formula; norms: their input's shape...). A failing view or cat in the user's own
code goes on with a stand-in the same way. A value-dependent op (`.item()`, a boolean mask,
`.numpy()`) ends the run: "cannot dry-run past <module>: <op>".

The run is isolated (inspector.engine.isolate): the model's parameters, buffers and tensor
attributes are swapped for fakes in place, and everything the forward may write (module
attributes, submodules, hooks, caches, the dicts a user's hook stores into) is put back, the
very same objects, when it ends. Inputs are handed over as fake copies, never themselves.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from inspector.engine.diagnose import silent_findings
from inspector.engine.diagnose.errors import explain_context, explain_failure
from inspector.engine.diagnose.locate import FailedOp, op_name, user_line
from inspector.engine.distributed import forward_collective
from inspector.engine.dryrun_shapes import kernel_gap, substitute_op, substitute_output
from inspector.engine.fake import FakeRun, Unverifiable, data_dependent_op, is_fake
from inspector.engine.hooks import DeferredInterrupts
from inspector.engine.isolate import Snapshot
from inspector.engine.naming import frame_line, user_frame
from inspector.engine.recorder import Failure, Recorder
from inspector.engine.records import Call, Diagnosis, Trace
from inspector.engine.trace import check_module, inspectable


class CheckResult(list[Diagnosis]):
    """The findings of a dry run (a list), with the calls it recorded.

    Attributes:
        calls: every module call reached, with the shapes it would see.
        stopped: why the run ended early (a value-dependent op), or None.
        notes: what was checked in place of what was given (a DDP wrapper's `.module`).
    """

    def __init__(self, findings: list[Diagnosis], calls: list[Call], stopped: str | None) -> None:
        super().__init__(findings)
        self.calls = calls
        self.stopped = stopped
        self.notes: list[str] = []

    @property
    def errors(self) -> list[Diagnosis]:
        return [f for f in self if f.kind == "error"]

    @property
    def ok(self) -> bool:
        """No error found: `assert inspector.check(model, shape).ok` in a test suite."""
        return not self.errors


class _Stop(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"cannot dry-run past {where or '(root)'}: {what}")
        self.where, self.what = where, what


def check(
    model: nn.Module,
    *args_or_shapes: Any,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    **kwargs: Any,
) -> CheckResult:
    """Dry-run `model` on fake tensors and return every finding.

    Which inputs are shapes: a positional argument that is a `torch.Size` always is; a
    positional tuple of ints is a shape (a float32 input of that size) only when no positional
    argument is a tensor, as in `check(model, (4, 3, 32, 32))`. Everything else is a value:
    keyword arguments (`output_size=(2, 3)`), tuples next to a real tensor
    (`check(model, x, (8, 8))`), anything inside a list, dict or object. Values are copied,
    their tensors made fake; the objects passed in are never written.

    Nested, quantized and sparse tensor inputs and a TorchScript root are not dry-run: the
    result holds one "not-verified" finding that says so. A TorchScript child runs whole on
    the fakes, seen only at its boundary. The forward runs in the caller's grad mode, so a
    forward that takes gradients itself works as it does for real.

    Nothing of the user's is written: the model's state is put back as the same objects, and
    state outside it that its hooks and forwards reach (an activation dict, a module-level
    cache) is put back where the run left a fake tensor in it.

    Args:
        model: the module; its weights may live on any device, "meta" included.
        *args_or_shapes: inputs, or their shapes (see above).
        loss_fn: optional loss, checked against `target` (a tensor or a shape).
        **kwargs: keyword inputs of the model.
    """
    check_module(model, "model")
    model, unwrapped = inspectable(model)
    refused = _refusal(model, loss_fn)
    if refused is not None:
        return refused
    device = _device_of(model)
    recorder = Recorder(stats=False)
    run = _DryRun(recorder)
    error: BaseException | None = None
    explained: Diagnosis | None = None
    snapshot = Snapshot((model, loss_fn, args_or_shapes, kwargs, target), leaked=is_fake)
    interrupts = DeferredInterrupts()
    recorder.poll = interrupts.poll
    try:
        with interrupts, FakeRun() as fake:
            run.fake = fake
            try:
                args, fake_kwargs, fake_target = _inputs(
                    fake, args_or_shapes, kwargs, target, device
                )
            except Unverifiable as exc:
                return _not_verified("", f"an input is {exc}")
            _swap_in_fakes(fake, (model, loss_fn), device)
            recorder.attach(model)
            if isinstance(loss_fn, nn.Module):
                recorder.attach(loss_fn, "loss_fn")
            with run.substituting(model, loss_fn):
                try:
                    output = model(*args, **fake_kwargs)
                    if loss_fn is not None:
                        if isinstance(loss_fn, nn.Module):
                            loss_fn(output, fake_target)
                        else:
                            recorder.call_function("loss_fn", loss_fn, output, fake_target)
                except _Stop as stop:
                    run.stopped = str(stop)
                except Exception as exc:
                    error = exc
                    run.stop_if_data_dependent(exc)
            if error is not None and run.stopped is None:
                explained = run.explain_final(error)
    finally:
        try:
            recorder.detach()
        finally:
            snapshot.restore()
    findings = list(run.findings)
    if run.stopped is not None:
        error = None
    elif explained is not None and not any(f.exception == _exc_text(error) for f in findings):
        findings.append(explained)
    if error is None and run.stopped is None and all(f.code == "not-verified" for f in findings):
        findings.extend(silent_findings(Trace(recorder.calls), recorder.modules))
    if run.stopped is not None:
        findings.append(
            Diagnosis(kind="warning", module=run.stop_module, summary=run.stopped,
                      code="dry-run-stopped",
                      details=("the shapes after this point depend on tensor values; "
                               "run inspector.trace on real data to see the rest",))
        )  # fmt: skip
    recorder.release()
    result = CheckResult(findings, recorder.calls, run.stopped)
    if unwrapped is not None:
        result.notes.append(unwrapped)
    return result


def _refusal(model: nn.Module, loss_fn: Any) -> CheckResult | None:
    """A result without a run, for models the dry run cannot stand in for."""
    lazy = next((p for p, m in model.named_modules() if _is_lazy(m)), None)
    if lazy is not None:
        stop = f"cannot dry-run past {lazy or '(root)'}: its lazy parameters are not initialized"
        note = Diagnosis(kind="warning", module=lazy, summary=stop, code="dry-run-stopped",
                         fixes=("run one real forward first (that sizes the lazy layers), "
                                "then check again",))  # fmt: skip
        return CheckResult([note], [], stop)
    collective = forward_collective(model)
    if collective is not None:
        return _not_verified(
            "",
            f"{collective}; a dry run on one rank cannot stand in for a collective",
            "check the model before wrapping it (DistributedDataParallel, fully_shard)",
        )
    if _scripted(model) or _scripted(loss_fn):
        return _not_verified(
            "",
            "it is a TorchScript module, which the dry run cannot look into",
            "run inspector.trace on real inputs instead",
        )
    return None


def _scripted(module: Any) -> bool:
    """A TorchScript module: run whole on the fakes (its own tensors stay real, and ops
    on them alone are undone by the snapshot), never swapped into or wrapped."""
    return isinstance(module, torch.jit.ScriptModule)


def _modules(root: nn.Module) -> Iterator[nn.Module]:
    """The modules of `root`, not looking inside TorchScript ones."""
    pending, seen = [root], set()
    while pending:
        module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        if not _scripted(module):
            pending.extend(c for c in reversed(module._modules.values()) if c is not None)


def _not_verified(module: str, why: str, *fixes: str) -> CheckResult:
    where = module or "(root)"
    summary = f"not verified: {why}"
    note = Diagnosis(kind="warning", module=module, summary=summary, code="not-verified",
                     details=(f"check() did not dry-run {where}",), fixes=fixes)  # fmt: skip
    return CheckResult([note], [], summary)


def _inputs(
    fake: FakeRun,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    target: Any,
    device: torch.device,
) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Fake copies of the inputs; shapes as the docstring of `check` says."""
    shapes_allowed = not any(isinstance(a, torch.Tensor) for a in args)
    fake_args = tuple(
        fake.empty(a, torch.float32, device)
        if _is_shape(a, sized_only=not shapes_allowed)
        else fake.convert(a, device)
        for a in args
    )
    fake_kwargs = {k: fake.convert(v, device) for k, v in kwargs.items()}
    fake_target = (
        fake.empty(target, torch.float32, device)
        if _is_shape(target, sized_only=False)
        else fake.convert(target, device)
    )
    return fake_args, fake_kwargs, fake_target


def _is_shape(value: Any, *, sized_only: bool) -> bool:
    if isinstance(value, torch.Size):
        return True
    if sized_only or type(value) is not tuple or not value:
        return False
    return all(type(d) is int and d >= 0 for d in value)


def _is_lazy(module: nn.Module) -> bool:
    return any(
        isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False)
    )


def _exc_text(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"


def _device_of(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def _swap_in_fakes(fake: FakeRun, roots: tuple[Any, ...], device: torch.device) -> None:
    """Put a fake in place of every parameter, buffer and tensor attribute of the modules.

    Written straight into the modules' tables (the snapshot puts the real ones back): a
    parameter stays an nn.Parameter, so a forward that hands one module's weight to another
    (`layer.weight = self.fc.weight`) works as it does for real, and a tensor shared by two
    modules (tied weights) gets one fake.
    """
    made: dict[int, torch.Tensor] = {}

    def stand_in(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in made:
            param = isinstance(tensor, nn.Parameter)
            made[id(tensor)] = (fake.parameter if param else fake.tensor)(tensor, device)
        return made[id(tensor)]

    for root in roots:
        if not isinstance(root, nn.Module):
            continue
        for module in _modules(root):
            if _scripted(module):
                continue
            tables: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for table in tables:
                for name, tensor in list(table.items()):
                    if tensor is not None and not is_fake(tensor):
                        _assign(module, table, name, stand_in(tensor))
            state = vars(module)
            for name, value in list(state.items()):
                if isinstance(value, torch.Tensor) and not is_fake(value):
                    with suppress(Unverifiable):  # else met as a real tensor: guarded
                        state[name] = stand_in(value)


def _assign(module: nn.Module, table: dict[str, Any], name: str, value: torch.Tensor) -> None:
    """Through the module's __setattr__ (an RNN refreshes its flat weight list there), or
    into its table where that refuses."""
    try:
        setattr(module, name, value)
    except Exception:
        table[name] = value
    if table.get(name) is not value:
        table[name] = value


class _DryRun:
    """Turns failures into findings and stand-ins, so the run reaches the next mismatch."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.fake: FakeRun | None = None
        self.findings: list[Diagnosis] = []
        self.stopped: str | None = None
        self.stop_module = ""
        self._leaves: set[int] = set()
        self._gaps: set[tuple[str, str]] = set()  # (module, op) already noted
        self._explaining = False  # a diagnosis replays the failing layer: let that one raise

    @contextmanager
    def substituting(self, model: nn.Module, loss_fn: Any) -> Iterator[None]:
        """Leaf modules answer a failure with their declared output. Their wrapped forward
        is an instance attribute, removed again by the snapshot that isolates the run."""
        roots = [model] + ([loss_fn] if isinstance(loss_fn, nn.Module) else [])
        for root in roots:
            for module in _modules(root):
                if _scripted(module):
                    continue
                if next(module.children(), None) is None and "forward" not in vars(module):
                    module.forward = self._wrap(module, module.forward)
                    self._leaves.add(id(module))
        with _OpStandIns(self):
            yield

    def _wrap(self, module: nn.Module, forward: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return forward(*args, **kwargs)
            except _Stop:
                raise
            except Exception as exc:
                if self._explaining:
                    raise
                self._raise_if_data_dependent(exc)
                stand_in = substitute_output(module, args, kwargs)
                if stand_in is None:
                    raise
                self._record_module_failure(module, args, kwargs, exc)
                return stand_in

        return guarded

    def _where(self) -> str:
        seq = self.recorder.current()
        return self.recorder.calls[seq].path if seq is not None else ""

    def _raise_if_data_dependent(self, exc: BaseException) -> None:
        what = data_dependent_op(exc)
        if what is not None:
            self.stop_module = self._where()
            raise _Stop(self.stop_module, what) from exc

    def stop_if_data_dependent(self, exc: BaseException) -> None:
        """A value-dependent op that reached the top (outside any torch function): a stop."""
        try:
            self._raise_if_data_dependent(exc)
        except _Stop as stop:
            self.stopped = str(stop)

    def explain_final(self, error: BaseException) -> Diagnosis:
        """The diagnosis of the error that ended the run (while the fakes are in place)."""
        try:
            failure = self.recorder.failure_for(error)
            trace = Trace(self.recorder.calls, error=error)
            return explain_failure(trace, failure, error, self.recorder.modules)
        except Exception:  # the explanation failed: the error itself is the finding
            return Diagnosis(kind="error", module="", summary=str(error).split("\n")[0],
                             code="unexplained", exception=_exc_text(error))  # fmt: skip

    def _record_module_failure(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
    ) -> None:
        seq = self.recorder.current()
        if seq is None:
            return
        self.recorder.mark_substituted(exc)
        trace = Trace(list(self.recorder.calls), error=exc)
        self._explaining = True
        try:
            diag = explain_failure(trace, Failure(seq, module, args, kwargs, exc),
                                   exc, self.recorder.modules, self.recorder.lookup)  # fmt: skip
        finally:
            self._explaining = False
        if diag.line is None or diag.line.file == __file__:
            diag = dataclasses.replace(diag, line=self.recorder.calls[seq].call_site)
        self.findings.append(diag)

    def op_failed(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  exc: Exception) -> Any:  # fmt: skip
        """A torch op in a module's own code failed: record it, return a stand-in or raise."""
        if self._explaining:
            raise exc
        self._raise_if_data_dependent(exc)
        name = op_name(func)
        gap = kernel_gap(name, args, kwargs)
        if gap is not None:
            return self._kernel_gap(name, gap, exc)
        seq = self.recorder.current()
        if seq is None or id(self.recorder.modules[seq]()) in self._leaves:
            raise exc  # a leaf's failure is handled (and explained) by its wrapper
        stand_in = substitute_op(name, args, kwargs)
        if stand_in is None:
            raise exc
        self.recorder.mark_substituted(exc)
        failed = FailedOp(name, args, kwargs, exc, self._line(exc))
        trace = Trace(list(self.recorder.calls), error=exc)
        module = self.recorder.modules[seq]()
        self.findings.append(
            explain_context(
                trace, seq, module, failed, exc, self.recorder.modules, self.recorder.lookup
            )
        )
        return stand_in

    def _line(self, exc: BaseException) -> Any:
        frame = user_frame(sys._getframe())
        return frame_line(frame) if frame is not None else user_line(exc.__traceback__)

    def _kernel_gap(self, name: str, gap: tuple[Any, str], exc: Exception) -> Any:
        """An op that works for real but has no fake kernel for these inputs: not the
        model's fault. Go on with the shape the op declares, and say it was not verified."""
        stand_in, shape = gap
        where = self._where()
        if (where, name) not in self._gaps:
            self._gaps.add((where, name))
            self.findings.append(
                Diagnosis(kind="warning", module=where, code="not-verified",
                          summary=f"not verified: {name} has no fake-tensor kernel for these "
                                  f"inputs; the dry run went on with its declared output {shape}",
                          line=self._line(exc), details=(_exc_text(exc).split("\n")[0],))
            )  # fmt: skip
        return stand_in

    def guard_real(self, func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """An in-place op on a real tensor met in the run (a global, a tensor in a list):
        torch would write into it for real. It writes into a fake of it instead."""
        if self.fake is None or not args or not isinstance(args[0], torch.Tensor):
            return args
        if is_fake(args[0]) or not _in_place(op_name(func)):
            return args
        return (self.fake.from_real(args[0]), *args[1:])


def _in_place(name: str) -> bool:
    if name.startswith("i") and name[1:] in _IN_PLACE_DUNDERS:
        return True  # __iadd__ and friends (op_name strips the underscores)
    return (name.endswith("_") and not name.startswith("_")) or name == "setitem"


_IN_PLACE_DUNDERS = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or",
                     "xor", "lshift", "rshift", "matmul"}  # fmt: skip


class _OpStandIns(TorchFunctionMode):
    def __init__(self, run: _DryRun) -> None:
        super().__init__()
        self.run = run

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        args = self.run.guard_real(func, args)
        try:
            return func(*args, **kwargs)
        except (_Stop, TypeError):
            raise
        except Exception as exc:
            return self.run.op_failed(func, args, kwargs, exc)
