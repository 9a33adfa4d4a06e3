"""Plain JSON for traces: no pickle, nothing executed on load, strict validation on read.

Every record is written as an object tagged with its kind ("t" for TensorInfo, "s" for
Struct, "tuple"), so a tuple reads back as a tuple and a string as a string. `Trace.to_json`
and `Trace.from_json` are the public doors; this module knows the parts of a trace (calls,
error, findings), not the Trace class, so the two never import each other. It writes them and
checks a document's frame; `serialize_read` reads the parts, field by field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from inspector.engine.records.calls import Call, Diagnosis, SourceLine, exception_message
from inspector.engine.records.serialize_read import (
    RecordReader,
    as_object,
    as_text,
    list_field,
    reason,
    text_field,
)
from inspector.engine.records.tensors import Gradient, Stats, Struct, TensorInfo, Units, Value

FORMAT = "torch-inspector-trace"
VERSION = 2  # 2: every record's fields named; 1: tensors, statistics and lines as arrays
READS = (1, 2)  # the versions `load` reads


class TraceFormatError(ValueError):
    """A trace file that is not valid torch-inspector JSON; the message says what is wrong."""


def dump(
    calls: Sequence[Call],
    error: BaseException | None,
    findings: Sequence[Diagnosis],
    *,
    notes: Sequence[str] = (),
    indent: int | None = None,
) -> str:
    """The JSON document of a trace's parts."""
    doc_error = None
    if error is not None:
        type_name = getattr(error, "type_name", type(error).__name__)
        doc_error = {"type": type_name, "message": exception_message(error)}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "calls": [_call(c) for c in calls],
        "error": doc_error,
        "findings": [_diagnosis(d) for d in findings],
    }
    if notes:
        doc["notes"] = list(notes)
    return json.dumps(doc, indent=indent, allow_nan=True)


def load(
    text: str | bytes,
) -> tuple[list[Call], tuple[str, str] | None, list[Diagnosis], list[str]]:
    """The parts `dump` wrote: calls, the error as (type name, message), findings, notes (an
    older file has none). Any other
    document raises TraceFormatError (a ValueError) that says what is wrong: every field is
    checked for its type and range, so whatever is accepted renders like a recorded trace."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise TraceFormatError("not a trace file: JSON nested too deep") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, an integer of 5000 digits
        raise TraceFormatError(f"not a trace file: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TraceFormatError(f"not a trace file: expected a JSON object with format={FORMAT!r}")
    version = doc.get("version")
    if type(version) is not int or version not in READS:
        shown = repr(version) if isinstance(version, (int, float, str)) else type(version).__name__
        raise TraceFormatError(
            f"unsupported trace version {shown[:40]} (this version reads "
            f"{', '.join(map(str, READS))}; a newer torch-inspector wrote it?)"
        )
    try:
        reader = RecordReader(len(list_field(doc, "calls")), version)
        calls = [reader.call(c, i) for i, c in enumerate(list_field(doc, "calls"))]
        findings = [reader.diagnosis(d) for d in list_field(doc, "findings")]
        err = doc.get("error")
        error = None
        if err is not None:
            err = as_object(err, "'error'")
            error = (text_field(err, "type"), text_field(err, "message"))
    except TraceFormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise TraceFormatError(f"malformed trace file: {reason(exc)}") from None
    for i, call in enumerate(calls):
        if call.seq != i or (call.parent is not None and not 0 <= call.parent < i):
            raise TraceFormatError(f"malformed trace file: call {i} is out of order")
        expected = 0 if call.parent is None else calls[call.parent].depth + 1
        if call.depth != expected:
            raise TraceFormatError(
                f"malformed trace file: call {i} has depth {call.depth}, its parent says {expected}"
            )
    raw_notes = doc.get("notes", [])
    if not isinstance(raw_notes, list) or len(raw_notes) > 64:
        raise TraceFormatError("malformed trace file: 'notes' is not a short list of strings")
    notes = [as_text(n, "a note") for n in raw_notes]
    return calls, error, findings, notes


# -- writing ------------------------------------------------------------------------------


def _value(v: Value) -> Any:
    if isinstance(v, TensorInfo):
        return {
            "tensor": {
                "shape": list(v.shape),
                "dtype": v.dtype,
                "device": v.device,
                "requires_grad": v.requires_grad,
                "layout": v.layout,
                "contiguous": v.contiguous,
            },
            "producer": v.producer,
            "view_of": v.view_of,
            "stats": _stats(v.stats) if v.stats is not None else None,
        }
    if isinstance(v, Struct):
        return {"s": v.type, "fields": [[k, _value(x)] for k, x in v.fields]}
    if isinstance(v, tuple):
        return {"tuple": [_value(x) for x in v]}
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    return v


def _stats(s: Stats) -> dict[str, Any]:
    return {
        "numel": s.numel,
        "mean": _num(s.mean),
        "std": _num(s.std),
        "min": _num(s.min),
        "max": _num(s.max),
        "nan": s.nan,
        "inf": s.inf,
        "zero_fraction": s.zero_fraction,
        "histogram": list(s.histogram),
        "histogram_range": [_num(s.histogram_range[0]), _num(s.histogram_range[1])],
        "sampled": s.sampled,
    }


def _num(x: float) -> Any:
    return x if math.isfinite(x) else repr(x)


def _line(line: SourceLine | None) -> Any:
    if line is None:
        return None
    return {"file": line.file, "lineno": line.lineno, "text": line.text, "function": line.function}


def _call(c: Call) -> dict[str, Any]:
    return {
        "seq": c.seq,
        "path": c.path,
        "index": c.index,
        "type": c.type,
        "depth": c.depth,
        "parent": c.parent,
        "inputs": [_value(v) for v in c.inputs],
        "kwargs": _value(c.kwargs) if c.kwargs is not None else None,
        "outputs": _value(c.outputs),
        "status": c.status,
        "error": c.error,
        "module_repr": c.module_repr,
        "params": c.params,
        "duration_ms": c.duration_ms,
        "call_site": _line(c.call_site),
        "units": _units(c.units),
        "grad": _grad(c.grad),
    }


def _units(u: Units | None) -> Any:
    if u is None:
        return None
    return {"axis": u.axis, "count": u.count, "dead": list(u.dead), "saturated": u.saturated}


def _grad(g: Gradient | None) -> Any:
    if g is None:
        return None
    return {
        "outputs": [_stats(s) if s is not None else None for s in g.outputs],
        "params": [
            {"name": name, "grad_norm": _num(grad), "norm": _num(size)}
            for name, grad, size in g.params
        ],
        "order": g.order,
    }


def _diagnosis(d: Diagnosis) -> dict[str, Any]:
    op = None
    if d.op is not None:
        op = {
            "name": d.op.name,
            "operands": [_value(v) for v in d.op.operands],
            "kwargs": [[k, _value(v)] for k, v in d.op.kwargs],
        }
    return {
        "kind": d.kind,
        "module": d.module,
        "summary": d.summary,
        "module_type": d.module_type,
        "call": d.call,
        "line": _line(d.line),
        "op": op,
        "details": list(d.details),
        "fixes": list(d.fixes),
        "code": d.code,
        "exception": d.exception,
    }
