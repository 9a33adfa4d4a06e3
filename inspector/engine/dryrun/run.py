"""The dry run's handling of failures: findings and stand-ins, so it reaches the next mismatch.

A leaf module that fails answers with its declared output (inspector.engine.dryrun.shapes); a
failed view or cat in the user's own code goes on with a stand-in the same way. Every torch
function passes through `OpStandIns`, which also runs ops of real integer values for real
(inspector.engine.dryrun.fake) and asks what the fake kernels skip (inspector.engine.dryrun.checks).
A value-dependent op on fake values ends the run: "could not verify past <module>: <op>".
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from inspector.engine.capture.naming import frame_line, user_frame
from inspector.engine.capture.pass_record import Failure
from inspector.engine.capture.recorder import Recorder
from inspector.engine.diagnose.errors import explain_context, explain_failure
from inspector.engine.diagnose.locate import FailedOp, op_name, user_line
from inspector.engine.dryrun.checks import Unchecked, kernel_check
from inspector.engine.dryrun.fake import FakeRun, data_dependent_op, is_fake
from inspector.engine.dryrun.inputs import modules_of, scripted
from inspector.engine.dryrun.shapes import kernel_gap, substitute_op, substitute_output
from inspector.engine.records import Diagnosis, Trace


class Stop(Exception):
    """A value-dependent op on fake values: the run cannot go on."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"could not verify past {where or '(root)'}: {what}")
        self.where, self.what = where, what


def exc_text(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"


class DryRun:
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
        self.meta_inputs = False  # the caller's tensors are all on meta: no values to check

    @contextmanager
    def substituting(self, model: nn.Module, loss_fn: Any) -> Iterator[None]:
        """Leaf modules answer a failure with their declared output. Their wrapped forward
        is an instance attribute, removed again by the snapshot that isolates the run."""
        roots = [model] + ([loss_fn] if isinstance(loss_fn, nn.Module) else [])
        for root in roots:
            for module in modules_of(root):
                if scripted(module):
                    continue
                if next(module.children(), None) is None and "forward" not in vars(module):
                    module.forward = self._wrap(module, module.forward)
                    self._leaves.add(id(module))
        with OpStandIns(self):
            yield

    def _wrap(self, module: nn.Module, forward: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return forward(*args, **kwargs)
            except Stop:
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
            raise Stop(self.stop_module, what) from exc

    def stop_if_data_dependent(self, exc: BaseException) -> None:
        """A value-dependent op that reached the top (outside any torch function): a stop."""
        try:
            self._raise_if_data_dependent(exc)
        except Stop as stop:
            self.stopped = str(stop)

    def explain_final(self, error: BaseException) -> Diagnosis:
        """The diagnosis of the error that ended the run (while the fakes are in place)."""
        try:
            failure = self.recorder.failure_for(error)
            trace = Trace(self.recorder.calls, error=error)
            return explain_failure(trace, failure, error, self.recorder.modules)
        except Exception:  # the explanation failed: the error itself is the finding
            return Diagnosis(kind="error", module="", summary=str(error).split("\n")[0],
                             code="unexplained", exception=exc_text(error))  # fmt: skip

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
                          line=self._line(exc), details=(exc_text(exc).split("\n")[0],))
            )  # fmt: skip
        return stand_in

    def check_kernel(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Raise what the real op would raise where its fake kernel does not look (ids out
        of range, mixed dtypes); note the lookups whose ids the run cannot read."""
        name = getattr(func, "__name__", "")
        if name not in _CHECKED or self._explaining or self.fake is None:
            return
        found = kernel_check(_CHECKED[name], args, kwargs, self.fake.real)
        if isinstance(found, Exception):
            raise found
        if isinstance(found, Unchecked):
            self._unchecked(found.table)

    def _unchecked(self, rows: int) -> None:
        where = self._where()
        if (where, "ids") in self._gaps:
            return
        self._gaps.add((where, "ids"))
        if self._meta_inputs():
            why = "the model's inputs are on the meta device: there are no values to check"
            more = "pass the ids as real integer tensors to have them checked"
        else:
            why = "they are computed from values a dry run does not have"
            more = (
                "ids passed in as integer tensors are checked for real; these come from "
                "float activations (an argmax, a router)"
            )
        self.findings.append(
            Diagnosis(kind="warning", module=where, code="not-verified",
                      summary=f"not verified: ids were not checked against {where or '(root)'} "
                              f"({rows} rows): {why}",
                      details=(more,))
        )  # fmt: skip

    def _meta_inputs(self) -> bool:
        return self.meta_inputs

    def guard_real(self, func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """An in-place op on a real tensor met in the run (a global, a tensor in a list):
        torch would write into it for real. It writes into a fake of it instead."""
        if self.fake is None or not args or not isinstance(args[0], torch.Tensor):
            return args
        if is_fake(args[0]) or self.fake.owns(args[0]) or not _in_place(op_name(func)):
            return args
        return (self.fake.from_real(args[0]), *args[1:])


# Ops whose real kernel checks something their fake kernel does not: name -> check.
_CHECKED = {
    "embedding": "embedding",
    "embedding_bag": "embedding_bag",
    "cross_entropy": "cross_entropy",
    "nll_loss": "nll_loss",
    "binary_cross_entropy": "binary_cross_entropy",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
    "linear": "linear",
    "matmul": "matmul",
    "__matmul__": "matmul",
    "mm": "mm",
    "bmm": "bmm",
    "addmm": "addmm",
    "conv1d": "conv1d",
    "conv2d": "conv2d",
    "conv3d": "conv3d",
    "softmax": "softmax",
    "log_softmax": "softmax",
}


# Lookups whose ids, checked for real (`_CHECKED`), are handed to the op as fakes.
_LOOKUPS = frozenset({"embedding", "embedding_bag"})


def _in_place(name: str) -> bool:
    if name.startswith("i") and name[1:] in _IN_PLACE_DUNDERS:
        return True  # __iadd__ and friends (op_name strips the underscores)
    return (name.endswith("_") and not name.startswith("_")) or name == "setitem"


_IN_PLACE_DUNDERS = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or",
                     "xor", "lshift", "rshift", "matmul"}  # fmt: skip


class OpStandIns(TorchFunctionMode):
    def __init__(self, run: DryRun) -> None:
        super().__init__()
        self.run = run

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        run = self.run
        try:
            if run.fake is not None and run.fake.runs_real(func, args, kwargs):
                return run.fake.run_real(func, args, kwargs)
            args = run.guard_real(func, args)
            run.check_kernel(func, args, kwargs)
            if run.fake is not None and getattr(func, "__name__", "") in _LOOKUPS:
                args, kwargs = run.fake.lookup_operands(args, kwargs)  # the ids are checked
            return func(*args, **kwargs)
        except (Stop, TypeError):
            raise
        except Exception as exc:
            return run.op_failed(func, args, kwargs, exc)
