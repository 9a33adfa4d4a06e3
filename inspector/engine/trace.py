"""`inspector.trace`: run a model once with hooks and return the record of the pass."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

from inspector.engine.capture.events import InspectorWarning
from inspector.engine.capture.gradients import BackwardRequestError, backward_root
from inspector.engine.capture.recorder import Recorder
from inspector.engine.diagnose.anomalies import Thresholds
from inspector.engine.distributed import rank_info
from inspector.engine.records import Diagnosis, Trace, exception_text


def trace(
    model: nn.Module,
    *args: Any,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    stats: bool = True,
    backward: bool = False,
    thresholds: Thresholds | None = None,
    **kwargs: Any,
) -> Trace:
    """Run `model(*args, **kwargs)` once with hooks (then `loss_fn(output, target)`).

    Never raises the model's exception: `trace.error` holds it and the calls recorded up to
    the failure are kept. Hooks are always removed and train/eval modes restored. A
    KeyboardInterrupt still reaches the caller, after the hooks are gone.

    Args:
        model: the module to run.
        *args: positional inputs of `model`.
        loss_fn: optional loss module or function, applied as `loss_fn(output, target)` and
            recorded under the path "loss_fn".
        target: the loss target.
        stats: compute statistics of every tensor (False: shapes, dtypes and devices only).
        backward: also run the backward pass of the loss (or of the model's output, when it is
            a scalar) and record each call's output-gradient statistics and parameter-gradient
            norms in `call.grad`. Gradients accumulate into `.grad` as `loss.backward()`
            would.
        thresholds: when the numerical findings fire (dead units, saturation, activation
            scale, vanishing and exploding gradients); each finding names the one it used.
        **kwargs: keyword inputs of `model`.
    """
    check_module(model, "model")
    model, note = inspectable(model, backward)
    recorder = Recorder(stats=stats, gradients=backward)
    recorder.entry_frames(2)  # trace() and run_recorded() stand between the caller and model
    run = run_recorded(
        recorder, model, args, kwargs, loss_fn=loss_fn, target=target, backward=backward
    )
    try:
        recorder.settle()  # statistics computed on an accelerator: read them all at once
        result = Trace(recorder.calls, output=run.output, loss=run.loss, error=run.error)
        result.findings = findings_of(result, recorder, thresholds, run.in_backward)
        if note is not None:
            result.notes.append(note)
        ranks = rank_info()
        if ranks is not None:  # every record of a job names its rank (the JSON too)
            result.notes.append(f"rank {ranks[0]} of {ranks[1]}")
    finally:
        recorder.release()
    return result


def findings_of(
    result: Trace, recorder: Recorder, thresholds: Thresholds | None, in_backward: bool
) -> list[Diagnosis]:
    """The pass's findings; a fault in the diagnosis costs the findings, never the record."""
    from inspector.engine.diagnose import collect_findings

    try:
        return collect_findings(result, recorder, thresholds, in_backward)
    except Exception as exc:
        warnings.warn(
            f"torch-inspector could not explain this pass ({exception_text(exc)}); "
            f"the record of the pass is complete",
            InspectorWarning,
            stacklevel=3,
        )
        return []


class RunResult:
    __slots__ = ("error", "in_backward", "loss", "output")

    def __init__(self) -> None:
        self.output: Any = None
        self.loss: Any = None
        self.error: BaseException | None = None
        self.in_backward = False  # the error came from the backward pass


def run_recorded(
    recorder: Recorder,
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    backward: bool = False,
) -> RunResult:
    """Attach `recorder`, run the pass (and its backward), always detach and restore modes.

    A bad request for backward (no scalar to differentiate) raises ValueError after cleanup.
    """
    result = RunResult()
    modes: list[tuple[weakref.ref[nn.Module], bool]] = []
    try:
        modes = save_modes(model, loss_fn)
        # Inside the try: an interrupt while the hooks go on leaves none behind.
        recorder.attach(model)
        if isinstance(loss_fn, nn.Module):
            recorder.attach(loss_fn, "loss_fn")
        result.output = model(*args, **kwargs)
        if loss_fn is not None:
            if isinstance(loss_fn, nn.Module):
                result.loss = loss_fn(result.output, target)
            else:
                result.loss = call_recorded(recorder, "loss_fn", loss_fn, result.output, target)
        if backward:
            recorder.stop_forward()
            root = backward_root(result.output, result.loss, loss_fn is not None)
            result.in_backward = True
            root.backward()
            result.in_backward = False
    except BackwardRequestError:
        raise
    except Exception as exc:
        result.error = exc
    finally:
        # The retry is written out here, not only inside detach(): a Ctrl+C is delivered
        # when a function is entered, so a call to a cleanup that retries is itself a window.
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                recorder.detach()
                restore_modes(modes)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
    return result


def call_recorded(recorder: Recorder, path: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` recorded as a call named `path` (a loss given as a plain function)."""
    recorder.enter(fn, args, {}, path=path)
    try:
        result = fn(*args)
    except Exception:
        recorder.exit(fn, args, {}, None)
        raise
    recorder.exit(fn, args, {}, result)
    return result


def inspectable(model: nn.Module, backward: bool = False) -> tuple[nn.Module, str | None]:
    """The module to run in place of `model`, and a note when it is not `model` itself.

    A DistributedDataParallel wrapper's forward is a collective (a buffer broadcast; the
    gradient all-reduce it arms): run from one rank alone it stalls the others. Its `.module`
    is the user's own forward, so that is what runs, and the note says so.
    """
    from inspector.engine.distributed import unwrap

    inner, note = unwrap(model)
    if inner is not model and backward:
        raise ValueError(
            "backward=True through DistributedDataParallel's .module would skip its gradient "
            "all-reduce and leave this rank's gradients unlike the others'; trace without "
            "backward, or attach(model) to the training loop (attach records the real steps)"
        )
    return inner, note


def check_module(model: Any, what: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"inspector expects an nn.Module as `{what}`, got {type(model).__name__}; "
            f"pass the model itself, e.g. inspector.trace(model, x)"
        )


def save_modes(*roots: Any) -> list[tuple[weakref.ref[nn.Module], bool]]:
    """Each module's train/eval mode (each module once), walked through `_modules` (what
    `modules()` walks, without building every dotted name on the way)."""
    modes: list[tuple[weakref.ref[nn.Module], bool]] = []
    seen: set[int] = set()
    todo = [root for root in roots if isinstance(root, nn.Module)]
    while todo:
        module = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        modes.append((weakref.ref(module), module.training))
        todo.extend([m for m in module._modules.values() if m is not None])
    return modes


def restore_modes(modes: list[tuple[weakref.ref[nn.Module], bool]]) -> None:
    for ref, training in modes:
        module = ref()
        if module is not None and module.training != training:
            module.training = training
