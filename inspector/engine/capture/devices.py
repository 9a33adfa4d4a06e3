"""What differs between devices, in one place: a new accelerator touches this file only.

- The random number generators the user's program draws from: the CPU's and each accelerator
  torch has started. Work the inspector runs itself (the extra passes of contributions, a
  debugger's restart) keeps or restores all of them, never the CPU's alone.
- The widest float type a device's statistics can accumulate in (MPS has no float64).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

ACCELERATORS = ("cuda", "xpu", "mps", "mtia")


def _started(device_type: str) -> Any:
    """torch's module for `device_type` when its generators exist in this process, else None."""
    try:
        module = torch.get_device_module(device_type)
    except (RuntimeError, AttributeError, ValueError):
        return None
    started = getattr(module, "is_initialized", None)
    if started is None or not started():
        return None
    if not hasattr(module, "get_rng_state_all") and not hasattr(module, "get_rng_state"):
        return None
    return module


def rng_state() -> dict[str, Any]:
    """Every generator's state: "cpu" and each started accelerator."""
    state: dict[str, Any] = {"cpu": torch.random.get_rng_state()}
    for device_type in ACCELERATORS:
        module = _started(device_type)
        if module is None:
            continue
        if hasattr(module, "get_rng_state_all"):
            state[device_type] = module.get_rng_state_all()
        else:
            state[device_type] = module.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what `rng_state()` returned."""
    for device_type, value in state.items():
        if device_type == "cpu":
            torch.random.set_rng_state(value)
            continue
        module = _started(device_type)
        if module is None:
            continue
        if hasattr(module, "set_rng_state_all"):
            module.set_rng_state_all(value)
        else:
            module.set_rng_state(value)


@contextlib.contextmanager
def rng_kept() -> Iterator[None]:
    """Every generator as it was before the block, after it (an interrupt included)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def wide_float(device: torch.device) -> torch.dtype:
    """The float type statistics accumulate in on `device`."""
    return torch.float32 if device.type == "mps" else torch.float64
