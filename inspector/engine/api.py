"""The engine's entry points beside `trace`: diagnose, explain."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

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


@contextlib.contextmanager
def explain(model: nn.Module | None = None) -> Iterator[None]:
    """On a failure inside the block, add the diagnosis to the ORIGINAL exception as a note.

    The exception's type, message and traceback are unchanged (PEP 678 `add_note`).

        with inspector.explain():
            model(x)
    """
    from inspector.engine.recorder import Recorder
    from inspector.engine.trace import Trace

    recorder = Recorder(stats=False)
    if model is not None:
        recorder.attach(model)
    else:
        recorder.attach_global()
    try:
        yield
    except Exception as exc:
        recorder.detach()
        try:
            from inspector.engine.diagnose import explain_failure

            record = Trace(recorder.calls, error=exc)
            diag = explain_failure(record, recorder.failure_for(exc), exc, recorder.modules)
            exc.add_note("torch-inspector:\n" + str(diag))
        except Exception:  # the explanation is a bonus; the user's exception comes first
            pass
        finally:
            recorder.release()
        raise
    finally:
        recorder.detach()
