"""The engine's entry points beside `trace`: diagnose, explain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import nn

from inspector.engine.records import Diagnosis
from inspector.engine.trace import trace


def diagnose(
    model: nn.Module,
    *args: Any,
    loss_fn: Callable[..., Any] | None = None,
    target: Any = None,
    **kwargs: Any,
) -> Diagnosis | None:
    """Run the model once and return the first finding (the error's explanation), or None.

    Never raises for a failing model: the failure is what it explains.
    """
    return trace(model, *args, loss_fn=loss_fn, target=target, stats=True, **kwargs).diagnosis


class explain:  # lower case: used like a function, `with inspector.explain():`
    """On a failure inside the block, add the diagnosis to the ORIGINAL exception as a note.

    The exception's type, message and traceback are unchanged (PEP 678 `add_note`): the
    exception is not caught and re-raised, only annotated on its way out. Exceptions raised
    outside any module call pass through untouched.

        with inspector.explain():
            model(x)

    Args:
        model: hook only this model; by default every module called in the block.
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        from inspector.engine.recorder import Recorder

        self._model = model
        self._recorder = Recorder(stats=False)

    def __enter__(self) -> explain:
        if self._model is not None:
            self._recorder.attach(self._model)
        else:
            self._recorder.attach_global()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        recorder = self._recorder
        recorder.detach()
        try:
            if isinstance(exc, Exception):
                failure = recorder.failure_for(exc)
                if failure is not None:
                    from inspector.engine.diagnose import explain_failure
                    from inspector.engine.trace import Trace

                    record = Trace(recorder.calls, error=exc)
                    diag = explain_failure(record, failure, exc, recorder.modules)
                    exc.add_note("torch-inspector:\n" + str(diag))
        except Exception:  # the explanation is a bonus; the user's exception comes first
            pass
        finally:
            recorder.release()
        return False


def check(model: nn.Module, *args_or_shapes: Any, **kwargs: Any) -> Any:
    """Dry-run `model` on fake tensors (no memory, no compute); every finding in one pass.

    Inputs may be tensors or shapes: `inspector.check(model, (4, 3, 32, 32))`. Returns a
    CheckResult: a list of Diagnosis with `.calls` (every module's shapes) and `.stopped`.
    """
    from inspector.engine.dryrun import check as dry_check

    return dry_check(model, *args_or_shapes, **kwargs)
