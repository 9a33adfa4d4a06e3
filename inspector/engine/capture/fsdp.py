"""The parameters whose gradients autograd computes under FSDP2 (`fully_shard`).

A module that FSDP2 manages holds sharded parameters (DTensors) between its calls; each
forward all-gathers them into unsharded parameters, and autograd accumulates every gradient
into those. The sharded parameter's `.grad` is written later by a reduce-scatter, outside
autograd: a hook on it never runs. So a module's parameter gradient is heard on the
unsharded parameter (this rank's full gradient, before the reduce-scatter averages it across
ranks), which FSDP2 keeps from the first all-gather on. Its internals are private: anything
unexpected leaves the module's own parameters as they are.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class UnshardedParameters:
    """Sharded parameter -> FSDP2's record of it, learnt from the modules of a model."""

    def __init__(self) -> None:
        self._by_sharded: dict[int, Any] = {}
        self._learnt: set[int] = set()

    def learn(self, root: Any) -> None:
        """Every parameter FSDP2 manages under `root` (once per root)."""
        if not isinstance(root, nn.Module) or id(root) in self._learnt:
            return
        self._learnt.add(id(root))
        for module in root.modules():
            if not hasattr(module, "_get_fsdp_state"):
                continue
            try:
                state: Any = module._get_fsdp_state  # a method FSDP2 adds to the class
                group = state()._fsdp_param_group
                for fsdp_param in group.fsdp_params if group is not None else ():
                    self._by_sharded[id(fsdp_param.sharded_param)] = fsdp_param
            except Exception:
                continue

    def own_parameters(self, module: nn.Module) -> list[tuple[str, Any]]:
        """`module.named_parameters(recurse=False)`, each sharded parameter FSDP2 manages
        replaced by its unsharded one (once the forward has all-gathered it)."""
        own = list(module.named_parameters(recurse=False))
        if not self._by_sharded:
            return own
        found = []
        for name, param in own:
            fsdp_param = self._by_sharded.get(id(param))
            unsharded = getattr(fsdp_param, "_unsharded_param", None)
            found.append((name, unsharded if unsharded is not None else param))
        return found
