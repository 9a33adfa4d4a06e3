"""DistributedDataParallel's unused-parameter error, with the parameters named.

When a rank's forward skips parameters (a branch taken on some batches only), DDP waits for
gradients that never come and fails at the next forward with "Parameter indices which did
not receive grad for rank 1: 10 11", indices into its own list of parameters. That list is
rebuilt here the way DDP builds it (every module's own parameters that require a gradient,
in `named_modules()` order, those DDP was told to ignore left out, each parameter once), from
the wrapper found in the traceback: reading names, running nothing.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

_INDICES = re.compile(r"Parameter indices which did not receive grad for rank (\d+): ([\d ]+)")


def reducer_parameter_names(ddp: Any) -> list[str]:
    """The names of DDP's parameters, in the order its reducer numbers them."""
    ignored = set(getattr(ddp, "parameters_to_ignore", ()) or ())
    names: list[str] = []
    seen: set[int] = set()
    for module_name, module in ddp.module.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if not param.requires_grad or f"{module_name}.{param_name}" in ignored:
                continue
            if id(param) in seen:
                continue
            seen.add(id(param))
            names.append(full)
    return names


def unused_parameters(error: BaseException) -> str | None:
    """The note for DDP's unused-parameter error: the parameters by name, grouped by the
    module that owns them, and the two fixes. None for any other error."""
    match = _INDICES.search(str(error))
    if match is None:
        return None
    ddp = _wrapper(error)
    if ddp is None:
        return None
    rank = match.group(1)
    names = reducer_parameter_names(ddp)
    indices = [int(i) for i in match.group(2).split()]
    if not indices or any(i >= len(names) for i in indices):
        return None
    unused = [names[i] for i in indices]
    owners = dict.fromkeys(n.rpartition(".")[0] or "(root)" for n in unused)
    modules = dict(ddp.module.named_modules())
    described = ", ".join(
        f"{path} ({type(modules[path]).__name__})" if path in modules else path for path in owners
    )
    return (
        f"rank {rank}'s previous step gave no gradient to {', '.join(unused)} "
        f"(parameter indices {' '.join(map(str, indices))}): the forward skipped {described} "
        "on that rank, so DDP waited for gradients that never came.\n"
        f"  fix: DistributedDataParallel(model, find_unused_parameters=True) (DDP then finds "
        f"the parameters a step did not use), or run {described} on every rank at every step"
    )


def _wrapper(error: BaseException) -> Any:
    """The DistributedDataParallel whose forward raised `error`, from the traceback."""
    from torch.nn.parallel import DistributedDataParallel

    tb = error.__traceback__
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, DistributedDataParallel) and isinstance(owner.module, nn.Module):
            found = owner
        tb = tb.tb_next
    return found
