"""`inspector.check`: a dry run on fake tensors that reports every mismatch in one pass.

No memory for activations and no real compute. When a layer fails, its finding is recorded
and the run goes on with the output the layer declares (Linear: out_features; Conv: the
spatial formula; norms: their input's shape...). A failing view or cat in the user's own
code goes on with a stand-in the same way. A value-dependent op (`.item()`, a boolean mask,
`.numpy()`) on fake values ends the run: "could not verify past <module>: <op>", a note.
Integer inputs (ids, positions, masks, labels) stay real, so lookups and class targets are
checked for real and branches on their values go the way the real run goes.

The run is isolated (inspector.engine.dryrun.isolate): the model's parameters, buffers and tensor
attributes are swapped for fakes in place, and everything the forward may write (module
attributes, submodules, hooks, caches, the dicts a user's hook stores into) is put back, the
very same objects, when it ends. Inputs are handed over as fake copies, never themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from inspector.engine.capture.hooks import DeferredInterrupts
from inspector.engine.capture.recorder import Recorder
from inspector.engine.diagnose import silent_findings
from inspector.engine.distributed import forward_collective
from inspector.engine.dryrun.fake import FakeRun, Unverifiable, is_fake
from inspector.engine.dryrun.inputs import (
    device_of,
    dry_inputs,
    is_lazy,
    scripted,
    swap_in_stand_ins,
)
from inspector.engine.dryrun.isolate import Snapshot, collector_paused
from inspector.engine.dryrun.run import DryRun, Stop, exc_text
from inspector.engine.records import Call, Diagnosis, Trace
from inspector.engine.trace import call_recorded, check_module, inspectable


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
    device = device_of(model)
    recorder = Recorder(stats=False)
    run = DryRun(recorder)
    # The fake mode's first construction imports torch._dynamo: a third of that import's
    # time goes to the collections its new objects trigger, each over the whole heap; the
    # forward itself runs with the collector as the caller has it.
    with collector_paused():
        fake = FakeRun()
    error: BaseException | None = None
    explained: Diagnosis | None = None
    roots = (model, loss_fn, args_or_shapes, kwargs, target)
    snapshot = Snapshot(roots, leaked=lambda v: is_fake(v) or fake.owns(v))
    interrupts = DeferredInterrupts()
    recorder.poll = interrupts.poll
    try:
        with interrupts, fake:
            run.fake = fake
            given = [t for t in (*args_or_shapes, *kwargs.values()) if isinstance(t, torch.Tensor)]
            run.meta_inputs = bool(given) and all(t.device.type == "meta" for t in given)
            try:
                args, fake_kwargs, fake_target = dry_inputs(
                    fake, args_or_shapes, kwargs, target, device
                )
            except Unverifiable as exc:
                return _not_verified("", f"an input is {exc}")
            # Hooked before the stand-ins go in: the walks of a model checked (or traced)
            # before are kept with its parameters' identities, which the stand-ins are not.
            recorder.attach(model)
            if isinstance(loss_fn, nn.Module):
                recorder.attach(loss_fn, "loss_fn")
            swap_in_stand_ins(fake, (model, loss_fn), device)
            with run.substituting(model, loss_fn):
                try:
                    output = model(*args, **fake_kwargs)
                    if loss_fn is not None:
                        if isinstance(loss_fn, nn.Module):
                            loss_fn(output, fake_target)
                        else:
                            call_recorded(recorder, "loss_fn", loss_fn, output, fake_target)
                except Stop as stop:
                    run.stopped = str(stop)
                except Exception as exc:
                    error = exc
                    run.stop_if_data_dependent(exc)
            if error is not None and run.stopped is None:
                explained = run.explain_final(error)
    finally:
        # Retried here, not only inside each cleanup: a Ctrl+C is delivered when a function is
        # entered, so calling a cleanup that retries is itself a window.
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                recorder.detach()
                snapshot.restore()
                fake.release()
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
    findings = list(run.findings)
    if run.stopped is not None:
        error = None
    elif explained is not None and not any(f.exception == exc_text(error) for f in findings):
        findings.append(explained)
    if error is None and run.stopped is None and all(f.code == "not-verified" for f in findings):
        findings.extend(silent_findings(Trace(recorder.calls), recorder.modules))
    if run.stopped is not None:
        findings.append(_stop_note(run.stop_module, run.stopped, model, recorder.calls))
    recorder.release()
    result = CheckResult(findings, recorder.calls, run.stopped)
    if unwrapped is not None:
        result.notes.append(unwrapped)
    return result


def _stop_note(module: str, stopped: str, model: nn.Module, calls: list[Call]) -> Diagnosis:
    """What a run that stopped early did not verify: the modules it never reached."""
    reached = {c.path for c in calls}
    missed = [p for p, _ in model.named_modules() if p and p not in reached]
    details = ["the shapes after this point depend on tensor values the dry run does not "
               "have; run inspector.trace on real data to see the rest"]  # fmt: skip
    if missed:
        shown = ", ".join(missed[:6]) + (f" and {len(missed) - 6} more" if len(missed) > 6 else "")
        details.append(f"not verified: {len(missed)} modules never reached ({shown})")
    return Diagnosis(kind="warning", module=module, summary=stopped, code="not-verified",
                     details=tuple(details))  # fmt: skip


def _refusal(model: nn.Module, loss_fn: Any) -> CheckResult | None:
    """A result without a run, for models the dry run cannot stand in for."""
    lazy = next((p for p, m in model.named_modules() if is_lazy(m)), None)
    if lazy is not None:
        stop = f"could not verify past {lazy or '(root)'}: its lazy parameters are not initialized"
        note = Diagnosis(kind="warning", module=lazy, summary=stop, code="not-verified",
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
    if scripted(model) or scripted(loss_fn):
        return _not_verified(
            "",
            "it is a TorchScript module, which the dry run cannot look into",
            "run inspector.trace on real inputs instead",
        )
    return None


def _not_verified(module: str, why: str, *fixes: str) -> CheckResult:
    where = module or "(root)"
    summary = f"not verified: {why}"
    note = Diagnosis(kind="warning", module=module, summary=summary, code="not-verified",
                     details=(f"check() did not dry-run {where}",), fixes=fixes)  # fmt: skip
    return CheckResult([note], [], summary)
