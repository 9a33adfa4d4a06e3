"""Gradients recorded from forward hooks, for the backward pass of a recorded forward.

When a call ends, each output tensor that requires grad gets a tensor hook, and each of the
module's own parameters gets one (once per pass). Never the global full backward hook: it
breaks any in-place op on a module output, such as `ReLU(inplace=True)`. A tensor hook sees
the gradient of the tensor as it was when the hook was registered, so a batch-norm output
later modified by an in-place ReLU still gets its own gradient.

Hooks only read: they return None (a returned tensor would replace the gradient), compute
statistics under no_grad, and never touch `.grad`. A parameter's hook sees the sum over
every use of the parameter in the pass, which is what autograd accumulates.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch

from inspector.engine.capture.describe import live_tensors
from inspector.engine.capture.device_stats import (
    DeviceBatch,
    device_packet,
    on_device,
    stats_from_packet,
)
from inspector.engine.capture.fsdp import UnshardedParameters
from inspector.engine.capture.hooks import TensorHooks
from inspector.engine.capture.pass_record import PassRecord
from inspector.engine.capture.stats import can_have_stats, compute_stats
from inspector.engine.capture.tensor_registry import tensor_version
from inspector.engine.records import Call, Gradient, Stats


class GradientRecorder:
    """Hooks the outputs and parameters of recorded calls; fills `Call.grad` as backward runs.

    `record` is the recorder's pass record: each call is replaced there by a copy with its
    Gradient. `on_gradient` hears each call whose gradient arrived (the stepper pauses there);
    `on_fault` turns recording off after an internal error.
    """

    def __init__(
        self,
        record: PassRecord,
        *,
        on_gradient: Callable[[Call], None] | None = None,
        on_fault: Callable[[Exception], None] | None = None,
        device: DeviceBatch | None = None,
    ) -> None:
        self.record = record
        self._fsdp = UnshardedParameters()
        self.calls = record.calls  # read; every write goes through the record
        self.on_gradient = on_gradient
        self.on_fault = on_fault
        # Gradients on an accelerator: their numbers wait in `device` (the recorder's batch)
        # until it is read; `refresh()` then puts them into the calls' records.
        self.device = device
        self._stale: set[int] = set()
        self._hooks = TensorHooks()
        self._tensors: dict[
            tuple[int, int | None], tuple[weakref.ref[torch.Tensor], list[tuple[int, int]]]
        ] = {}
        self._param_names: dict[int, list[tuple[int, str]]] = {}  # id(param) -> (module, name)
        self._module_calls: dict[int, list[int]] = {}  # id(module) -> seqs of its calls
        self._call_module: dict[int, int] = {}  # seq -> id(module)
        self._param_order: dict[int, list[str]] = {}  # id(module) -> its parameter names
        self._param_norms: dict[int, dict[str, tuple[float, float]]] = {}  # -> (grad, param)
        self._outs: dict[int, list[Stats | None]] = {}
        self._order: dict[int, int] = {}
        self._events = 0
        self._generation = 0
        self.enabled = True

    # -- forward side: register ------------------------------------------------------------

    def track(self, seq: int, module: Any, output: Any) -> None:
        """Hook the output tensors of call `seq` and, once per pass, `module`'s parameters."""
        if not self.enabled or not torch.is_grad_enabled():
            return
        for position, t in enumerate(live_tensors(output)):
            if not (t.requires_grad and (t.is_floating_point() or t.is_complex())):
                continue
            key = (id(t), tensor_version(t))
            entry = self._tensors.get(key)
            if entry is not None and entry[0]() is t:
                entry[1].append((seq, position))  # a container returning its child's tensor
                continue
            users = [(seq, position)]
            try:
                ref = weakref.ref(t)
            except TypeError:
                continue
            # ids of freed tensors come back: the weak reference tells a reuse apart
            self._tensors[key] = (ref, users)
            self._hooks.add(t, self._tensor_hook(users))
        if isinstance(module, torch.nn.Module):
            self._track_params(seq, module)

    def _track_params(self, seq: int, module: torch.nn.Module) -> None:
        mid = id(module)
        self._call_module[seq] = mid
        seqs = self._module_calls.get(mid)
        if seqs is not None:
            seqs.append(seq)
            return
        self._module_calls[mid] = [seq]
        names = self._param_order[mid] = []
        if self.record.modules:  # FSDP2: the gradient goes to the unsharded parameters
            self._fsdp.learn(self.record.modules[0]())
        for name, param in self._fsdp.own_parameters(module):
            if not param.requires_grad:
                continue
            names.append(name)
            owners = self._param_names.get(id(param))
            if owners is not None:  # tied: one hook, every owner hears it
                owners.append((mid, name))
                continue
            owners = self._param_names[id(param)] = [(mid, name)]
            self._hooks.add(param, self._param_hook(owners, weakref.ref(param)))

    def _tensor_hook(self, users: list[tuple[int, int]]) -> Callable[[torch.Tensor], None]:
        generation = self._generation

        def hook(grad: torch.Tensor) -> None:
            if not self.enabled or generation != self._generation:
                return
            try:
                stats = None if self._defer_stats(grad, users) else compute_stats(grad)
                event = self._next_event()
                for seq, position in users:
                    outs = self._outs.setdefault(seq, [])
                    outs.extend([None] * (position + 1 - len(outs)))
                    outs[position] = stats
                    self._order.setdefault(seq, event)
                seqs = sorted({seq for seq, _ in users})  # a container before its child
            except Exception as exc:
                self._fail(exc)
                return
            self._publish(seqs)

        return hook

    def _param_hook(
        self, owners: list[tuple[int, str]], param: weakref.ref[torch.Tensor]
    ) -> Callable[[torch.Tensor], None]:
        generation = self._generation

        def hook(grad: torch.Tensor) -> None:
            if not self.enabled or generation != self._generation:
                return
            try:
                seqs: list[int] = []
                for mid, _ in owners:
                    seqs.extend(self._module_calls.get(mid, ()))
                with torch.no_grad():
                    norm, size = _norm(grad), _norm(param(), like=grad)
                    if self.device is not None and on_device(grad):
                        packet = torch.stack([norm, size])
                        self.device.add(packet, self._norms_read(owners, seqs))
                    else:
                        self._set_norms(owners, float(norm), float(size))
            except Exception as exc:
                self._fail(exc)
                return
            self._publish(sorted(set(seqs)))

        return hook

    def _defer_stats(self, grad: torch.Tensor, users: list[tuple[int, int]]) -> bool:
        """Leave the statistics of a gradient on an accelerator to be read later."""
        if self.device is None or not on_device(grad) or not can_have_stats(grad):
            return False
        numel = grad.numel()

        def done(values: Any) -> None:
            stats = stats_from_packet(values, numel)
            for seq, position in users:
                self._outs[seq][position] = stats
                self._stale.add(seq)

        self.device.add(device_packet(grad), done)
        return True

    def _norms_read(self, owners: list[tuple[int, str]], seqs: list[int]) -> Callable[[Any], None]:
        def done(values: Any) -> None:
            self._set_norms(owners, float(values[0]), float(values[1]))
            self._stale.update(seqs)

        return done

    def _set_norms(self, owners: list[tuple[int, str]], norm: float, size: float) -> None:
        for mid, name in owners:
            self._param_norms.setdefault(mid, {})[name] = (norm, size)

    def refresh(self) -> None:
        """Put the gradient numbers read from accelerators into the calls' records."""
        seqs, self._stale = self._stale, set()
        for seq in sorted(seqs):
            if seq < len(self.calls) and self.calls[seq].grad is not None:
                self.record.update(seq, grad=self._gradient(seq))

    def _next_event(self) -> int:
        self._events += 1
        return self._events - 1

    def _publish(self, seqs: list[int]) -> None:
        for seq in seqs:
            call = self.record.update(seq, grad=self._gradient(seq))
            if call is not None and self.on_gradient is not None:
                self.on_gradient(call)

    def _gradient(self, seq: int) -> Gradient:
        call = self.calls[seq]
        return Gradient(
            tuple(self._outs.get(seq, ())),
            self._norms_of(seq),
            self._order.get(seq, call.grad.order if call.grad is not None else -1),
        )

    def _norms_of(self, seq: int) -> tuple[tuple[str, float, float], ...]:
        mid = self._call_module.get(seq)
        if mid is None or mid not in self._param_norms:
            return ()
        norms = self._param_norms[mid]
        order = self._param_order[mid]
        return tuple((name, *norms[name]) for name in order if name in norms)

    def _fail(self, exc: Exception) -> None:
        self.enabled = False
        self.remove()
        if self.on_fault is not None:
            self.on_fault(exc)

    # -- lifecycle ---------------------------------------------------------------------------

    def remove(self) -> None:
        """Remove every hook (tensors the user keeps alive must not call back later)."""
        self._hooks.remove()

    def new_pass(self) -> None:
        """Forget the previous pass: its hooks go, late gradients of it are ignored."""
        self.remove()
        self._generation += 1
        self._tensors.clear()
        self._param_names.clear()
        self._module_calls.clear()
        self._call_module.clear()
        self._param_order.clear()
        self._param_norms.clear()
        self._outs.clear()
        self._order.clear()
        self._stale.clear()
        self._events = 0


def _norm(t: torch.Tensor | None, like: torch.Tensor | None = None) -> torch.Tensor:
    """The 2-norm in float64 where `t` lives, NaN for a parameter already gone; no transfer."""
    if t is None:
        assert like is not None
        return torch.tensor(math.nan, dtype=torch.float64, device=like.device)
    return torch.linalg.vector_norm(t.detach(), dtype=torch.float64)


class BackwardRequestError(ValueError):
    """backward=True was asked of a pass that has no scalar to differentiate."""


def backward_root(output: Any, loss: Any, has_loss: bool) -> torch.Tensor:
    """The scalar to call backward on: the loss when one was given, else the model's own
    loss: a scalar output, its `loss` field or key, or a scalar first item of a tuple."""
    root = loss if has_loss else _own_loss(output)
    what = "the loss" if has_loss else "the model output"
    if not isinstance(root, torch.Tensor):
        raise BackwardRequestError(
            f"backward=True needs a scalar tensor to differentiate; {what} is a "
            f"{type(root).__name__}: give loss_fn and target, or a model that returns its loss"
        )
    if root.numel() != 1:
        raise BackwardRequestError(
            f"backward=True needs a scalar to differentiate; {what} has shape "
            f"{tuple(root.shape)}: give loss_fn and target (e.g. nn.CrossEntropyLoss())"
        )
    if not root.requires_grad:
        raise BackwardRequestError(
            f"backward=True: {what} does not require grad (no parameter requires grad, or "
            "the pass ran under torch.no_grad())"
        )
    return root


def _own_loss(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and "loss" in output:
        return output["loss"]
    if isinstance(getattr(output, "loss", None), torch.Tensor):
        return output.loss
    if (
        isinstance(output, (tuple, list))
        and output
        and isinstance(output[0], torch.Tensor)
        and output[0].numel() == 1
    ):
        return output[0]
    return output


def rms(stats: Stats) -> float:
    """Root mean square from the mean and the (unbiased) std."""
    n = stats.numel
    var = stats.std * stats.std * ((n - 1) / n if n > 1 else 0.0)
    return math.sqrt(max(stats.mean * stats.mean + var, 0.0))
