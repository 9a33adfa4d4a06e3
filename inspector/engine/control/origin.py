"""Where the NaN or Inf a breakpoint stopped at came from, from the pass recorded so far.

Three answers, in order: the values came in with the model's input (the batch itself holds
NaN/Inf: a corrupt sample, an overflowed preprocessing); a module's own weights are already
non-finite (made by an earlier optimizer step: under DistributedDataParallel possibly on
another rank, whose NaN gradient the all-reduce averaged into every rank's weights); else
the innermost call that made NaN/Inf from finite inputs, or the code between the children of
the call that holds the stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from inspector.engine.diagnose.anomalies import nan_origin
from inspector.engine.diagnose.context import warning_about
from inspector.engine.distributed import rank_info
from inspector.engine.records import Call, Diagnosis, TensorInfo, Trace, format_shape, tensors_in

ModuleOf = Callable[[int], Any]


def pause_origin(
    calls: Sequence[Call], call: Call, module_of: ModuleOf | None = None, pass_index: int = 0
) -> Diagnosis | None:
    """The origin of the NaN/Inf seen at `call`, or None when it cannot be told. Under a
    process group a rank that saw NaN/Inf made (or brought by its batch) says so on the job's
    store, and a rank whose weights arrived non-finite names that rank."""
    try:
        found = _input_origin(calls) or _weights_origin(calls, module_of) or _made(calls, call)
        if found is not None and found.code in ("nan-input", "nan-origin"):
            _tell_peers(found, pass_index)
        return found
    except Exception:  # the pause matters more than its explanation
        return None


PEERS_KEY = "nan/first"
_told: set[int] = set()  # this process posted its first NaN already (per rank)


def _tell_peers(found: Diagnosis, pass_index: int) -> None:
    from inspector.engine.distributed.store import post_own

    rank = rank_info()
    if rank is None or rank[0] in _told:
        return
    if post_own(PEERS_KEY, {"pass": pass_index + 1, "summary": found.summary}) is not None:
        _told.add(rank[0])


def _peers_first() -> list[str]:
    """What the other ranks posted about their first NaN/Inf (waiting a moment at most)."""
    from inspector.engine.distributed.store import peers_posted

    return [
        f"rank {r} saw it first, in pass {s.get('pass')}: {s.get('summary')}"
        for r, s in peers_posted(PEERS_KEY).items()
    ]


def tensors_in_call(call: Call) -> list[TensorInfo]:
    return [i for v in call.inputs for i in tensors_in(v)]


def _counts(info: TensorInfo) -> str:
    s = info.stats
    assert s is not None
    return f"{format_shape(info.shape)} with {s.nan} NaN and {s.inf} Inf of {s.numel} values"


def _input_origin(calls: Sequence[Call]) -> Diagnosis | None:
    """The pass's first call received NaN/Inf: the data, not the model, made it."""
    root = calls[0] if calls else None
    if root is None:
        return None
    bad = [(i, t) for i, t in enumerate(tensors_in_call(root)) if t.stats and not t.stats.finite]
    if not bad:
        return None
    position, info = bad[0]
    rank = rank_info()
    where = f" on rank {rank[0]}" if rank is not None else ""
    return warning_about(
        root,
        f"NaN/Inf arrives with the input of {root.name}{where}: the batch itself holds it",
        (f"input {position}: {_counts(info)}",
         "every module after it only carries the values it was given"),
        ("check the data of this step: a corrupt sample, a division or log in the "
         "preprocessing, a mask filled with -inf that a whole row keeps; "
         "torch.isfinite(x).all() before the forward finds the step",),
        "nan-input",
    )  # fmt: skip


def _weights_origin(calls: Sequence[Call], module_of: ModuleOf | None) -> Diagnosis | None:
    """A module whose parameters are already non-finite: the NaN came from an update."""
    if module_of is None:
        return None
    read: set[int] = set()  # a module called many times has its parameters read once
    for call in calls:
        inputs = tensors_in_call(call)
        if any(t.stats is None or not t.stats.finite for t in inputs):
            continue  # "its input was finite" must hold for the module named
        module = module_of(call.seq)
        if module is None or id(module) in read:
            continue
        read.add(id(module))
        bad = _bad_parameters(module)
        if not bad:
            continue
        shown = ", ".join(f"{name} {count}/{numel}" for name, count, numel in bad[:3])
        details = [f"non-finite values in its parameters: {shown}",
                   "its input was finite: this pass did not make them"]  # fmt: skip
        fixes = ["find the step whose update made them: break on `grad-nan` (`--break "
                 "'* if grad-nan'`) or check the loss before optimizer.step()"]  # fmt: skip
        rank = rank_info()
        if rank is not None:
            details.extend(_peers_first())
            details.append(
                f"under DistributedDataParallel the gradient all-reduce averages every rank's "
                f"gradients: one rank's NaN gradient makes every rank's weights NaN, so rank "
                f"{rank[0]} may only have received it"
            )
            fixes.append("look at every rank's log for the step where NaN/Inf first appeared "
                         "in a forward (an input of a step, or a module that made it)")  # fmt: skip
        return warning_about(
            call,
            f"NaN first appears in {call.name} ({call.type}) because its weights are already "
            "non-finite",
            tuple(details),
            tuple(fixes),
            "nan-weights",
        )
    return None


def _bad_parameters(module: Any) -> list[tuple[str, int, int]]:
    found = []
    with torch.no_grad():
        for name, param in module.named_parameters(recurse=False):
            if not (param.is_floating_point() or param.is_complex()) or param.device.type == "meta":
                continue
            count = int((~torch.isfinite(param.detach())).sum())
            if count:
                found.append((name, count, param.numel()))
    return found


def _made(calls: Sequence[Call], call: Call) -> Diagnosis | None:
    """The innermost call that made NaN/Inf from finite inputs; else the code of the call
    that holds `call`, between its children."""
    found = nan_origin(Trace(list(calls)))
    if found:
        return found[0]
    bad = next((i for i in tensors_in_call(call) if i.stats and not i.stats.finite), None)
    if bad is None or bad.stats is None or call.parent is None or call.parent >= len(calls):
        return None
    holder = calls[call.parent]
    return warning_about(
        holder,
        f"NaN/Inf first appears in {holder.name}'s own code, before it calls {call.name}",
        (f"{call.name} receives {format_shape(bad.shape)} with {bad.stats.nan} NaN and "
         f"{bad.stats.inf} Inf; every call before it in {holder.name} gave finite values",),
        ("look at the ops in its forward between the module calls (log or sqrt of "
         "negatives, division by zero, exp overflow)",),
        "nan-origin",
    )  # fmt: skip
