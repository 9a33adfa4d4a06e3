"""A module call's record, begun when it starts and completed when it returns: the part of
the recorder's hooks that runs at every call (`Recorder.enter` and `Recorder.exit` call these
with the recorder, after their checks).

Every step here runs right after an op, when Python's code and data have left the caches, so
it reads precomputed facts with one lookup (`ModuleFacts.known`), describes tensors on the
registry's fast path and builds each record positionally; bench/README.md has the costs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import torch

from inspector.engine.capture.activity import describe_units
from inspector.engine.capture.hooks import runs_below
from inspector.engine.capture.naming import site_of
from inspector.engine.capture.open_calls import OpenCall, drop_ended
from inspector.engine.capture.pass_record import Failure, ended, new_call
from inspector.engine.records import Call, Struct, Value, exception_text

_clock = time.perf_counter
_OWN_OPS = torch._C.DisableTorchFunction


def start_call(
    rec: Any,
    key: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    path: str | None,
    stack: list[OpenCall],
) -> Call:
    frame: Any = sys._getframe(2)  # above start_call and enter: the module's own call frame
    if frame.f_code is rec._global_pre_code:
        frame = frame.f_back
    # Open calls a KeyboardInterrupt ended (no exit hook ran) have left the stack above
    # this frame: drop them. Usually the innermost open call is the caller, 3 frames up.
    if stack and not runs_below(frame, stack[-1].frame):
        drop_ended(stack, frame)
    record = rec.record
    parent = stack[-1].seq if stack else None
    facts = rec._facts
    known = facts.known.get(id(key))
    if known is None or known[0]() is not key:
        known, final = facts.entry(key, record.calls[parent].path if parent is not None else None)
    else:
        final = True
    if path is None:
        path = known[4]
        if path is None:  # a function entered without a name: its own
            path = known[1]
    if rec.per_pass and parent is None and record.seen(path):
        rec.new_pass()  # describes the modules anew, or keeps what it checked unchanged
        renewed = facts.known.get(id(key))
        if renewed is not None and renewed[0]() is key:
            known, final = renewed, True
        else:
            known, final = facts.entry(key, None)
    seq, index = record.begin(path)
    describer = rec.describer
    if len(args) == 1 and isinstance(args[0], torch.Tensor):
        inputs: tuple[Any, ...] = (describer.tensor(args[0], None),)
    else:
        describe = describer.describe
        inputs = tuple([describe(a) for a in args])
    call = new_call(
        seq,
        path,
        index,
        known[3],  # type name
        len(stack),
        parent,
        inputs,
        Struct("kwargs", tuple([(k, describer.describe(v)) for k, v in kwargs.items()]))
        if kwargs
        else None,
        None,  # outputs
        "running",
        None,  # error
        known[1],  # the module's line
        known[2],  # parameters
        0.0,  # duration_ms
        site_of(frame),
        None,  # units
        None,  # grad
    )
    record.add(call, known[0])
    if rec.values is not None and parent is None:
        rec.values.keep(seq, "in", (*args, *kwargs.values()))
    stack.append(
        OpenCall(
            seq, key, _clock(), sys.exc_info()[1], rec._paused_s, None, not final, frame,
            known[5],
        )
    )  # fmt: skip
    return call


def finish_call(
    rec: Any,
    key: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    output: Any,
    stack: list[OpenCall],
) -> Call | None:
    # Unwind to the matching entry: a BaseException (KeyboardInterrupt) skips post hooks.
    while stack and stack[-1].key is not key:
        stack.pop()
    if not stack:
        return None
    opened = stack.pop()
    record = rec.record
    seq = opened.seq
    call = record.calls[seq]
    if opened.redescribe:  # a lazy parameter got its shape during the call
        _, line, params, _, _ = rec._facts.of(key)
        call = dataclasses.replace(call, module_repr=line, params=params)
    in_flight = sys.exc_info()[1]
    paused = rec._paused_s - opened.paused_before
    elapsed = (_clock() - opened.started - paused) * 1e3
    if output is None and in_flight is not None and in_flight is not opened.exc_before:
        record.fail(Failure(seq, key, args, kwargs, in_flight))
        call = ended(call, None, "error", exception_text(in_flight), elapsed)
    else:
        describer = rec.describer
        if isinstance(output, torch.Tensor):
            outputs: Value = describer.tensor(output, seq)
        else:
            outputs = describer.describe(output, producer=seq)
        status, error = "ok", None
        if opened.substituted is not None:
            failed = opened.substituted
            status, error = "error", exception_text(failed)
        units = None
        if opened.unit:  # activations: dead or saturated units
            with _OWN_OPS():  # a tensor subclass's own code never sees our reads
                units = describe_units(key, output, outputs)
                if units is None and describer.stats and isinstance(output, torch.Tensor):
                    rec._pending.units(seq, key, output)
        call = ended(call, outputs, status, error, elapsed, units)
        if rec.gradients is not None:
            rec.gradients.track(seq, key, output)
        if rec.values is not None:
            rec.values.keep(seq, "out", output)
    record.set(seq, call)
    return call
