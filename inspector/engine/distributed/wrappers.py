"""Distributed wrappers: the module to inspect inside one, and why a forward is a collective.

DistributedDataParallel's forward broadcasts buffers and arms the gradient all-reduce:
running it on one rank only would leave the ranks out of step, so `unwrap()` finds the
user's module inside it. FSDP all-gathers its sharded parameters in every forward:
`forward_collective()` says so for any module that holds such a wrapper.
"""

from __future__ import annotations

import sys

from torch import nn

DDP_NOTE = (
    "DistributedDataParallel: inspected its .module; "
    "the wrapper's forward (a collective) was not run"
)


def _ddp_class() -> type | None:
    try:
        from torch.nn.parallel import DistributedDataParallel
    except ImportError:  # pragma: no cover
        return None
    return DistributedDataParallel


def _fsdp_classes() -> tuple[tuple[type, str], ...]:
    """FSDP's classes, looked up by name: FSDPModule (the class `fully_shard` mixes into a
    module, FSDP2) and FullyShardedDataParallel (FSDP1). Either may be missing from a build.
    A model wrapped by FSDP means the program imported it: until then there is nothing to
    find, and importing it here would cost about a second on every first look."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    if fsdp is None:
        return ()
    found = []
    for name, label in (
        ("FSDPModule", "FSDP2 (fully_shard)"),
        ("FullyShardedDataParallel", "FullyShardedDataParallel"),
    ):
        cls = getattr(fsdp, name, None)
        if isinstance(cls, type):
            found.append((cls, label))
    return tuple(found)


def unwrap(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The module to inspect in place of a distributed wrapper, and a note saying what was done.

    DistributedDataParallel: its `.module`, whose forward is the user's own code with no
    collective. FSDP (FSDP2's `fully_shard` classes, FSDP1) has no such inside: its parameters
    are shards that every forward all-gathers, so the model itself comes back with a note that
    its forward is a collective (see `forward_collective`). Anything else: `(model, None)`.
    """
    ddp = _ddp_class()
    notes: list[str] = []
    inner = model
    # Nested wrappers (DDP around DDP does not happen in practice, but costs nothing here).
    while ddp is not None and isinstance(inner, ddp) and isinstance(inner.module, nn.Module):
        inner = inner.module
        notes.append(DDP_NOTE)
    for cls, label in _fsdp_classes():
        if isinstance(inner, cls):
            notes.append(
                f"{label}: its parameters are sharded across ranks and its forward all-gathers "
                f"them (a collective); a look from one rank alone would stall the others"
            )
            break
    return inner, "; ".join(notes) or None


def forward_collective(module: nn.Module) -> str | None:
    """Why running `module`'s forward issues a collective, or None when it does not.

    Checks the module and everything inside it: DistributedDataParallel (a buffer broadcast
    and the gradient all-reduce it arms), FSDP2 and FSDP1 (parameter all-gathers).
    """
    ddp = _ddp_class()
    fsdp = _fsdp_classes()
    for path, sub in module.named_modules():
        where = path or "the model"
        if ddp is not None and isinstance(sub, ddp):
            return (
                f"{where} is DistributedDataParallel: its forward broadcasts buffers and arms "
                f"the gradient all-reduce"
            )
        for cls, label in fsdp:
            if isinstance(sub, cls):
                return f"{where} is {label}: its forward all-gathers sharded parameters"
    return None
