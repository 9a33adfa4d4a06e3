"""`inspector.check`: a dry run on fake tensors that reports every mismatch in one pass.

No memory for activations and no real compute. When a layer fails, its finding is recorded
and the run goes on with the output the layer declares (Linear: out_features; Conv: the
spatial formula; norms: their input's shape...). A failing view or cat in the user's own
code goes on with a stand-in the same way. A value-dependent op (`.item()`, a boolean mask)
ends the run: "cannot dry-run past <module>: <op>".
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from inspector.engine.diagnose import silent_findings
from inspector.engine.diagnose.errors import explain_context, explain_failure
from inspector.engine.diagnose.locate import FailedOp, op_name, user_line
from inspector.engine.dryrun_shapes import substitute_op, substitute_output
from inspector.engine.fake import FakeRun, data_dependent_op
from inspector.engine.naming import frame_line, user_frame
from inspector.engine.recorder import Failure, Recorder
from inspector.engine.records import Call, Diagnosis
from inspector.engine.trace import Trace, check_module, restore_modes, save_modes


class CheckResult(list[Diagnosis]):
    """The findings of a dry run (a list), with the calls it recorded.

    Attributes:
        calls: every module call reached, with the shapes it would see.
        stopped: why the run ended early (a value-dependent op), or None.
    """

    def __init__(self, findings: list[Diagnosis], calls: list[Call], stopped: str | None) -> None:
        super().__init__(findings)
        self.calls = calls
        self.stopped = stopped

    @property
    def errors(self) -> list[Diagnosis]:
        return [f for f in self if f.kind == "error"]


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

    Args:
        model: the module; its weights may live on any device, "meta" included.
        *args_or_shapes: inputs, or their shapes as tuples of ints (float32), e.g. (4, 3, 32, 32).
        loss_fn: optional loss, checked against `target` (a tensor or a shape).
        **kwargs: keyword inputs of the model.
    """
    check_module(model, "model")
    lazy = next((p for p, m in model.named_modules() if _is_lazy(m)), None)
    if lazy is not None:
        stop = f"cannot dry-run past {lazy or '(root)'}: its lazy parameters are not initialized"
        note = Diagnosis(kind="warning", module=lazy, summary=stop, code="dry-run-stopped",
                         fixes=("run one real forward first (that sizes the lazy layers), "
                                "then check again",))  # fmt: skip
        return CheckResult([note], [], stop)
    device = _device_of(model)
    recorder = Recorder(stats=False)
    run = _DryRun(recorder)
    modes = save_modes(model, loss_fn)
    owned = _owned_tensors(model)
    error: BaseException | None = None
    try:
        with FakeRun() as fake, torch.no_grad():
            args = tuple(fake.convert(a, device) for a in args_or_shapes)
            fake_kwargs = {k: fake.convert(v, device) for k, v in kwargs.items()}
            fake_target = fake.convert(target, device)
            state = _fake_state(fake, model, device)
            recorder.attach(model)
            if isinstance(loss_fn, nn.Module):
                recorder.attach(loss_fn, "loss_fn")
            with run.substituting(model, loss_fn):
                try:
                    output = torch.func.functional_call(model, state, args, fake_kwargs)
                    if loss_fn is not None:
                        if isinstance(loss_fn, nn.Module):
                            loss_fn(output, fake_target)
                        else:
                            recorder.call_function("loss_fn", loss_fn, output, fake_target)
                except _Stop as stop:
                    run.stopped = str(stop)
                except Exception as exc:
                    error = exc
    finally:
        recorder.detach()
        restore_modes(modes)
        _put_back(owned)
    trace = Trace(recorder.calls, error=error)
    findings = list(run.findings)
    if error is not None and not any(f.exception == _exc_text(error) for f in findings):
        failure = recorder.failure_for(error)
        findings.append(explain_failure(trace, failure, error, recorder.modules))
    if error is None and run.stopped is None and not findings:
        findings.extend(silent_findings(trace, recorder.modules))
    if run.stopped is not None:
        findings.append(
            Diagnosis(kind="warning", module=run.stop_module, summary=run.stopped,
                      code="dry-run-stopped",
                      details=("the shapes after this point depend on tensor values; "
                               "run inspector.trace on real data to see the rest",))
        )  # fmt: skip
    recorder.release()
    return CheckResult(findings, recorder.calls, run.stopped)


def _is_lazy(module: nn.Module) -> bool:
    return any(
        isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(recurse=False)
    )


def _exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _device_of(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def _fake_state(fake: FakeRun, model: nn.Module, device: torch.device) -> dict[str, torch.Tensor]:
    """Fake stand-ins for every parameter and buffer, each once: functional_call ties the
    other names of a shared tensor (tied weights, a module registered twice) itself."""
    named = itertools.chain(model.named_parameters(), model.named_buffers())
    return {name: fake.empty(t.shape, t.dtype, device) for name, t in named}


def _owned_tensors(model: nn.Module) -> list[tuple[nn.Module, str, str, torch.Tensor]]:
    found = []
    for module in model.modules():
        for kind in ("_parameters", "_buffers"):
            for name, tensor in getattr(module, kind).items():
                if tensor is not None:
                    found.append((module, kind, name, tensor))
    return found


def _put_back(owned: list[tuple[nn.Module, str, str, torch.Tensor]]) -> None:
    """Make sure every real parameter and buffer is in place after the dry run."""
    for module, kind, name, tensor in owned:
        table = getattr(module, kind)
        if table.get(name) is not tensor:
            table[name] = tensor


class _DryRun:
    """Turns failures into findings and stand-ins, so the run reaches the next mismatch."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.findings: list[Diagnosis] = []
        self.stopped: str | None = None
        self.stop_module = ""
        self._leaves: set[int] = set()
        self._explaining = False  # a diagnosis replays the failing layer: let that one raise

    @contextmanager
    def substituting(self, model: nn.Module, loss_fn: Any) -> Iterator[None]:
        roots = [model] + ([loss_fn] if isinstance(loss_fn, nn.Module) else [])
        wrapped: list[nn.Module] = []
        for root in roots:
            for module in root.modules():
                if next(module.children(), None) is None and "forward" not in vars(module):
                    module.forward = self._wrap(module, module.forward)
                    wrapped.append(module)
                    self._leaves.add(id(module))
        try:
            with _OpStandIns(self):
                yield
        finally:
            for module in wrapped:
                del module.forward

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

    def _raise_if_data_dependent(self, exc: BaseException) -> None:
        what = data_dependent_op(exc)
        if what is not None:
            seq = self.recorder.current()
            self.stop_module = self.recorder.calls[seq].path if seq is not None else ""
            raise _Stop(self.stop_module, what) from exc

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
            diag = explain_failure(trace, Failure(seq, module, args, kwargs, exc), exc,
                                   self.recorder.modules, self.recorder.lookup)  # fmt: skip
        finally:
            self._explaining = False
        if diag.line is None or diag.line.file == __file__:
            diag = _with_line(diag, self.recorder.calls[seq])
        self.findings.append(diag)

    def op_failed(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  exc: Exception) -> Any:  # fmt: skip
        """A torch op in a module's own code failed: record it, return a stand-in or raise."""
        if self._explaining:
            raise exc
        self._raise_if_data_dependent(exc)
        seq = self.recorder.current()
        if seq is None or id(self.recorder.modules[seq]()) in self._leaves:
            raise exc  # a leaf's failure is handled (and explained) by its wrapper
        stand_in = substitute_op(op_name(func), args, kwargs)
        if stand_in is None:
            raise exc
        self.recorder.mark_substituted(exc)
        frame = user_frame(sys._getframe())
        line = frame_line(frame) if frame is not None else user_line(exc.__traceback__)
        failed = FailedOp(op_name(func), args, kwargs, exc, line)
        trace = Trace(list(self.recorder.calls), error=exc)
        module = self.recorder.modules[seq]()
        self.findings.append(
            explain_context(
                trace, seq, module, failed, exc, self.recorder.modules, self.recorder.lookup
            )
        )
        return stand_in


class _OpStandIns(TorchFunctionMode):
    def __init__(self, run: _DryRun) -> None:
        super().__init__()
        self.run = run

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            return func(*args, **kwargs)
        except (_Stop, TypeError):
            raise
        except Exception as exc:
            return self.run.op_failed(func, args, kwargs, exc)


def _with_line(diag: Diagnosis, call: Call) -> Diagnosis:
    import dataclasses

    return dataclasses.replace(diag, line=call.call_site)
