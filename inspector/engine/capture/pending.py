"""Statistics a call's record is still waiting for.

On a GPU the recorder leaves each tensor's statistics (and an activation's unit facts) on the
device and reads them all at once, one transfer per device, when a pause shows them or the
pass ends (`settle`); until then a record's `stats` is None (a no-op on the CPU). A session
running free records shapes only; a pause there gets its call's statistics from the live
values (`restate`).
"""

from __future__ import annotations

from typing import Any

import torch

from inspector.engine.capture.activity import Finish, device_units
from inspector.engine.capture.describe import Describer
from inspector.engine.capture.device_stats import on_device
from inspector.engine.capture.pass_record import PassRecord
from inspector.engine.records import Call, Struct, TensorInfo


class PendingStats:
    """The calls whose records wait on device statistics, and the unit facts that do."""

    def __init__(self, describer: Describer) -> None:
        self.describer = describer
        self._calls: set[int] = set()
        self._units: dict[int, tuple[Finish, Any]] = {}

    def note(self, seq: int) -> None:
        """Call `seq`'s record holds statistics still on a device."""
        self._calls.add(seq)

    def units(self, seq: int, key: Any, output: torch.Tensor) -> None:
        """Dead or saturated units of an output on an accelerator, read at `settle()`."""
        if not on_device(output):
            return
        deferred = device_units(key, output)
        if deferred is None:
            return
        packet, finish = deferred

        def done(values: Any) -> None:
            self._units[seq] = (finish, values)

        self.describer.device.add(packet, done)
        self.describer.touched += 1

    def waiting(self) -> bool:
        return bool(self._calls) or bool(len(self.describer.device))

    def settle(self, record: PassRecord) -> None:
        """Read everything waiting and put it into the records. A device error propagates
        (the records keep stats=None)."""
        if not self.waiting():
            return
        seqs, self._calls = self._calls, set()
        try:
            infos = self.describer.settle()
        except Exception:
            self._units.clear()
            raise
        units, self._units = self._units, {}
        for seq in sorted(seqs):
            if seq >= len(record.calls):
                continue
            call = record.calls[seq]
            outputs = _with_infos(call.outputs, infos)
            found = call.units
            if seq in units:
                finish, values = units[seq]
                found = finish(values, outputs)
            record.update(
                seq,
                inputs=_with_infos(call.inputs, infos),
                kwargs=_with_infos(call.kwargs, infos),
                outputs=outputs,
                units=found,
            )

    def restate(
        self,
        record: PassRecord,
        call: Call,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: Any,
    ) -> Call:
        """`call` described again from its live values, statistics included (it was
        recorded while running free, shapes only)."""
        describer = self.describer
        seq = call.seq
        describe = describer.describe
        describer.stats = True
        touched = describer.touched
        try:
            inputs = tuple(describe(a) for a in args)
            kw = Struct("kwargs", tuple((k, describe(v)) for k, v in kwargs.items()))
            outputs = call.outputs
            if call.status == "ok":
                outputs = describe(output, producer=seq)
        finally:
            describer.stats = False
        if describer.touched != touched:
            self.note(seq)
        updated = record.update(seq, inputs=inputs, kwargs=kw if kwargs else None, outputs=outputs)
        return updated if updated is not None else call

    def clear(self) -> None:
        """A new pass: what waited for the old one is dropped."""
        self.describer.forget_waiting()
        self._calls.clear()
        self._units.clear()


def _with_infos(value: Any, infos: dict[int, TensorInfo]) -> Any:
    """`value` (a described value) with the TensorInfos named by id in `infos` replaced."""
    if isinstance(value, TensorInfo):
        return infos.get(id(value), value)
    if isinstance(value, tuple):
        return tuple(_with_infos(v, infos) for v in value)
    if isinstance(value, Struct):
        return Struct(value.type, tuple((k, _with_infos(v, infos)) for k, v in value.fields))
    return value
