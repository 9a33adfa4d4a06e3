"""The engine's entry points beside `trace`: diagnose, explain."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, Literal

from torch import nn

from inspector.engine.capture.describe import Describer
from inspector.engine.capture.naming import module_line
from inspector.engine.capture.pass_record import Failure
from inspector.engine.diagnose import explain_failure
from inspector.engine.diagnose.checkpoints import explain_load_error
from inspector.engine.diagnose.locate import module_chain
from inspector.engine.records import (
    Call,
    Diagnosis,
    Struct,
    Trace,
    exception_message,
    exception_text,
)
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
    exception is not caught and re-raised, only annotated on its way out. Nothing is hooked
    while the block runs (the code inside runs exactly as without it, frames included): the
    failing module calls, their inputs and the failing op are read from the traceback
    afterwards. A failing `load_state_dict` gets every mismatch between the model and the
    state dict explained (`check_state_dict`). Other exceptions raised outside any module
    call pass through untouched.

        with inspector.explain():
            model(x)

    Args:
        model: explain failures inside this model only (paths are named from it); by
            default any module's.
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        self._model = model

    def __enter__(self) -> explain:
        if self._model is not None:
            post_parameter_shapes(self._model)  # under torchrun: for ranks_disagree
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if isinstance(exc, Exception):
            try:
                loading = explain_load_error(exc, self._model)
                if loading is not None:
                    exc.add_note("torch-inspector:\n" + str(loading))
                    return False
            except Exception:  # the explanation is a bonus; the user's exception comes first
                pass
            try:
                diag = explain_traceback(exc, self._model)
                if diag is not None:
                    exc.add_note("torch-inspector:\n" + str(diag))
                across = ranks_disagree(exc)
                if across is not None:
                    exc.add_note("torch-inspector: " + across)
                from inspector.engine.distributed.unused import unused_parameters

                unused = unused_parameters(exc)
                if unused is not None:
                    exc.add_note("torch-inspector: " + unused)
            except Exception:  # the explanation is a bonus; the user's exception comes first
                pass
        return False


def explain_traceback(error: BaseException, model: nn.Module | None = None) -> Diagnosis | None:
    """The diagnosis of `error` from its traceback alone: the module calls it unwound (with
    their inputs), the failing op and the user's line. None when no module call failed."""
    chain = module_chain(error)
    if model is not None:
        inside = {id(m) for m in model.modules()}
        chain = [link for link in chain if id(link[0]) in inside]
    if not chain:
        return None
    root = model if model is not None else chain[0][0]
    paths: dict[int, str] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), path)
    describe = Describer(stats=False).describe
    calls: list[Call] = []
    for depth, (module, args, kwargs) in enumerate(chain):
        calls.append(
            Call(
                seq=depth,
                path=paths.get(id(module), type(module).__name__),
                index=0,
                type=type(module).__name__,
                depth=depth,
                parent=depth - 1 if depth else None,
                inputs=tuple(describe(a) for a in args),
                kwargs=Struct("kwargs", tuple((k, describe(v)) for k, v in kwargs.items()))
                if kwargs
                else None,
                status="error",
                error=exception_text(error),
                module_repr=module_line(module),
            )
        )
    module, args, kwargs = chain[-1]
    record: Trace = Trace(calls, error=error)
    modules: list[Any] = [weakref.ref(m) for m, _, _ in chain]
    seq = len(chain) - 1
    lookup = None
    walked = _walked(error, chain, root)
    if walked is not None:  # the calls each forward made before it failed, walked
        record, modules, lookup = walked.trace, list(walked.modules), walked.lookup
        seq = max(c.seq for c in record.calls if c.status == "error")
    failure = Failure(seq, module, args, kwargs, error)
    diag = explain_failure(record, failure, error, modules, lookup)
    from inspector.engine.distributed import rank_info

    ranks = rank_info()
    if diag is not None and ranks is not None:
        from inspector.engine.distributed.advice import ddp_input_in_chain, under_ddp

        given = ddp_input_in_chain(chain)
        if given is not None:
            diag = under_ddp(diag, ranks[0], given)
    return diag


def _walked(error: BaseException, chain: list[Any], root: nn.Module) -> Any:
    try:
        from inspector.engine.diagnose.walked import walked_trace

        with warnings.catch_warnings():  # torch's warnings on the meta shapes are not the user's
            warnings.simplefilter("ignore")
            return walked_trace(error, chain, root)
    except Exception:  # the walk is a bonus: the chain alone still explains
        return None


def ranks_disagree(error: BaseException) -> str | None:
    """DistributedDataParallel refusing a model whose parameters differ across ranks (its
    message names them by index): every rank posts its parameter shapes to the job's c10d
    store (no collective) and the first that differs is named with both ranks' shapes. None
    for any other error, or outside a process group."""
    from inspector.engine.distributed import (
        default_store,
        parameter_divergence,
        parameter_shapes,
        post_summary,
        rank_info,
        read_summaries,
    )

    ranks = rank_info()
    if ranks is None or "appears not to match" not in exception_message(error):
        return None
    module = _ddp_module(error)
    store = default_store()
    if module is None or store is None:
        return None
    rank, world = ranks
    post_summary(store, PARAMS_KEY, rank, parameter_shapes(module))
    found = parameter_divergence(read_summaries(store, PARAMS_KEY, world, timeout_s=10))
    if found is None:
        return None
    return f"the ranks' models differ: {found}; make every rank build the same model"


PARAMS_KEY = "explain/params"


def post_parameter_shapes(model: nn.Module) -> None:
    """Under a process group, this rank's parameter shapes on the job's c10d store (a store
    write, no collective): a rank whose DDP refuses the model reads the others' there (DDP
    checks on one rank only, so the others must have posted before)."""
    from inspector.engine.distributed import default_store, parameter_shapes, post_summary
    from inspector.engine.distributed import rank_info as ranks

    if model in _POSTED:  # once per model: an explain block in a training loop posts once
        return
    try:
        found = ranks()
        store = default_store() if found is not None else None
        if found is not None and store is not None:
            post_summary(store, PARAMS_KEY, found[0], parameter_shapes(model))
            _POSTED.add(model)
    except Exception:  # a look from one rank never stops the job
        pass


_POSTED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def _ddp_module(error: BaseException) -> nn.Module | None:
    """The module DistributedDataParallel was given, read from its __init__ frame."""
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and frame.f_code.co_filename.endswith(
            "distributed.py"
        ):
            module = frame.f_locals.get("module")
            if isinstance(module, nn.Module):
                return module
        tb = tb.tb_next
    return None


def check(model: nn.Module, *args_or_shapes: Any, **kwargs: Any) -> Any:
    """Dry-run `model` on fake tensors (no memory, no compute); every finding in one pass.

    Inputs may be tensors or shapes: `inspector.check(model, (4, 3, 32, 32))`. Returns a
    CheckResult: a list of Diagnosis with `.calls` (every module's shapes) and `.stopped`.
    """
    from inspector.engine.dryrun.check import check as dry_check

    return dry_check(model, *args_or_shapes, **kwargs)
