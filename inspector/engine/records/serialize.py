"""Plain JSON for traces: no pickle, nothing executed on load, strict validation on read.

Every record is written as an object tagged with its kind ("t" for TensorInfo, "s" for
Struct, "tuple"), so a tuple reads back as a tuple and a string as a string. `Trace.to_json`
and `Trace.from_json` are the public doors; this module knows the parts of a trace (calls,
error, findings), not the Trace class, so the two never import each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from inspector.engine.records.calls import Call, Diagnosis, OpInfo, SourceLine, exception_message
from inspector.engine.records.tensors import Gradient, Stats, Struct, TensorInfo, Units, Value

FORMAT = "torch-inspector-trace"
VERSION = 1


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
    if type(version) is not int or version != VERSION:
        shown = repr(version) if isinstance(version, (int, float, str)) else type(version).__name__
        raise TraceFormatError(
            f"unsupported trace version {shown[:40]} (this version reads {VERSION})"
        )
    try:
        reader = _Reader(len(_list(doc, "calls")))
        calls = [reader.call(c, i) for i, c in enumerate(_list(doc, "calls"))]
        findings = [reader.diagnosis(d) for d in _list(doc, "findings")]
        err = doc.get("error")
        error = None
        if err is not None:
            err = _dict(err, "'error'")
            error = (_str(err, "type"), _str(err, "message"))
    except TraceFormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise TraceFormatError(f"malformed trace file: {_reason(exc)}") from None
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
    notes = [_text(n, "a note") for n in raw_notes]
    return calls, error, findings, notes


# -- writing ------------------------------------------------------------------------------


def _value(v: Value) -> Any:
    if isinstance(v, TensorInfo):
        return {
            "t": [list(v.shape), v.dtype, v.device, v.requires_grad, v.layout, v.contiguous],
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


def _stats(s: Stats) -> list[Any]:
    return [
        s.numel,
        _num(s.mean),
        _num(s.std),
        _num(s.min),
        _num(s.max),
        s.nan,
        s.inf,
        s.zero_fraction,
        list(s.histogram),
        [_num(s.histogram_range[0]), _num(s.histogram_range[1])],
        s.sampled,
    ]


def _num(x: float) -> Any:
    return x if math.isfinite(x) else repr(x)


def _line(line: SourceLine | None) -> Any:
    if line is None:
        return None
    return [line.file, line.lineno, line.text, line.function]


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
        "params": [[name, _num(grad), _num(size)] for name, grad, size in g.params],
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


# -- reading -----------------------------------------------------------------------------

# Bounds on what a document may hold, beyond its types: sizes no recorded trace comes near.
MAX_NESTING = 64  # values inside values (describe stops at 8)
MAX_DIMS = 256
MAX_BINS = 4096
MAX_COUNT = 2**63 - 1  # element counts, parameter counts, dimensions, line numbers


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return str(exc)[:200]


def _dict(x: Any, what: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise TypeError(f"{what} must be an object, got {_kind(x)}")
    return x


def _seq(x: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(x, list):
        raise TypeError(f"{what} must be a list, got {_kind(x)}")
    if length is not None and len(x) != length:
        raise ValueError(f"{what} must have {length} items, not {len(x)}")
    return x


def _kind(x: Any) -> str:
    return "null" if x is None else type(x).__name__


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    return _seq(doc[key], repr(key))


def _str(doc: Any, key: str) -> str:
    return _text(_dict(doc, "a record")[key], repr(key))


def _text(x: Any, what: str) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{what} must be a string, got {_kind(x)}")
    return x


def _opt_text(x: Any, what: str) -> str | None:
    return None if x is None else _text(x, what)


def _bool(x: Any, what: str) -> bool:
    if not isinstance(x, bool):
        raise TypeError(f"{what} must be true or false, got {_kind(x)}")
    return x


def _int(x: Any, what: str, lo: int = 0, hi: int = MAX_COUNT) -> int:
    if type(x) is not int:
        raise TypeError(f"{what} must be an integer, got {_kind(x)}")
    if not lo <= x <= hi:
        raise ValueError(f"{what} = {x if abs(x) < 10**20 else 'a huge number'} is out of range")
    return x


def _opt_int(x: Any, what: str = "a call number", lo: int = 0, hi: int = MAX_COUNT) -> int | None:
    return None if x is None else _int(x, what, lo, hi)


def _read_num(x: Any, what: str = "a number") -> float:
    """A float as written: a JSON number, or "nan", "inf", "-inf" for the others."""
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {x[:40]!r}")
        return float(x)
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise TypeError(f"{what} must be a number, got {_kind(x)}")
    try:
        return float(x)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{what} is out of range") from None


def _read_stats(s: Any) -> Stats:
    numel, mean, std, mn, mx, nan, inf, zero, hist, hist_range, sampled = _seq(s, "stats", 11)
    numel = _int(numel, "numel")
    nan, inf = _int(nan, "the NaN count", hi=numel), _int(inf, "the Inf count", hi=numel)
    if nan + inf > numel:
        raise ValueError("more NaN and Inf than elements")
    low, high = _seq(hist_range, "histogram_range", 2)
    return Stats(
        numel=numel,
        mean=_read_num(mean, "mean"),
        std=_read_num(std, "std"),
        min=_read_num(mn, "min"),
        max=_read_num(mx, "max"),
        nan=nan,
        inf=inf,
        zero_fraction=_read_num(zero, "zero_fraction"),
        histogram=tuple(_int(c, "a histogram count") for c in _bins(hist)),
        histogram_range=(_read_num(low, "histogram_range"), _read_num(high, "histogram_range")),
        sampled=_int(sampled, "sampled"),
    )


def _bins(hist: Any) -> list[Any]:
    bins = _seq(hist, "histogram")
    if len(bins) > MAX_BINS:
        raise ValueError(f"a histogram of {len(bins)} bins")
    return bins


def _read_line(x: Any) -> SourceLine | None:
    if x is None:
        return None
    file, lineno, text, function = _seq(x, "a source line", 4)
    return SourceLine(
        _text(file, "file"),
        _int(lineno, "lineno"),
        _text(text, "the line's text"),
        _text(function, "function"),
    )


def _read_units(u: Any) -> Units | None:
    if u is None:
        return None
    u = _dict(u, "call units")
    count = _int(u["count"], "units count")
    saturated = u.get("saturated")
    return Units(
        axis=_int(u["axis"], "units axis", hi=MAX_DIMS),
        count=count,
        dead=tuple(_int(i, "a dead unit", hi=max(count - 1, 0)) for i in _seq(u["dead"], "dead")),
        saturated=_read_num(saturated, "saturated") if saturated is not None else None,
    )


def _read_grad(g: Any) -> Gradient | None:
    if g is None:
        return None
    g = _dict(g, "call grad")
    params = []
    for item in _seq(g["params"], "grad params"):
        name, grad, size = _seq(item, "a parameter gradient", 3)
        params.append((_text(name, "a parameter name"), _read_num(grad), _read_num(size)))
    return Gradient(
        outputs=tuple(
            _read_stats(s) if s is not None else None for s in _seq(g["outputs"], "outputs")
        ),
        params=tuple(params),
        order=_int(g["order"], "grad order", lo=-1),
    )


class _Reader:
    """Reads calls, values and findings of a document with `calls` calls: a call number in
    any of them (a producer, a diagnosis's call) must name one of those calls."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def call_number(self, x: Any, what: str) -> int | None:
        return _opt_int(x, what, hi=self.calls - 1)

    def value(self, v: Any, depth: int = 0) -> Value:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)):  # any number json reads prints again
            return v
        if depth >= MAX_NESTING:
            raise ValueError(f"values nested more than {MAX_NESTING} deep")
        v = _dict(v, "a value")
        if "t" in v:
            shape, dtype, device, requires_grad, layout, contiguous = _seq(v["t"], "a tensor", 6)
            stats = v.get("stats")
            return TensorInfo(
                shape=tuple(_int(d, "a dimension", lo=-1) for d in _seq(shape, "shape")),
                dtype=_text(dtype, "dtype"),
                device=_text(device, "device"),
                requires_grad=_bool(requires_grad, "requires_grad"),
                stats=_read_stats(stats) if stats is not None else None,
                layout=_text(layout, "layout"),
                contiguous=_bool(contiguous, "contiguous"),
                producer=self.call_number(v.get("producer"), "producer"),
                view_of=self.call_number(v.get("view_of"), "view_of"),
            )
        if "s" in v:
            fields = []
            for item in _seq(v["fields"], "struct fields"):
                key, value = _seq(item, "a struct field", 2)
                fields.append((_text(key, "a field name"), self.value(value, depth + 1)))
            return Struct(_text(v["s"], "a struct type"), tuple(fields))
        if "tuple" in v:
            return tuple(self.value(x, depth + 1) for x in _seq(v["tuple"], "a tuple"))
        if "float" in v:
            return _read_num(v["float"])
        raise ValueError(f"unknown value with keys {sorted(map(str, v))[:4]}")

    def call(self, c: Any, i: int) -> Call:
        c = _dict(c, f"call {i}")
        kwargs = c.get("kwargs")
        read_kwargs = self.value(kwargs) if kwargs is not None else None
        if read_kwargs is not None and not isinstance(read_kwargs, Struct):
            raise TypeError("call kwargs must be a struct")
        status = _str(c, "status")
        if status not in ("running", "ok", "error"):
            raise ValueError(f"bad call status {status[:40]!r}")
        return Call(
            seq=_int(c["seq"], "seq", hi=self.calls),
            path=_str(c, "path"),
            index=_int(c["index"], "index", hi=self.calls),
            type=_str(c, "type"),
            depth=_int(c["depth"], "depth", hi=self.calls),
            parent=_opt_int(c.get("parent"), "parent"),  # its order is checked with the rest
            inputs=tuple(self.value(v) for v in _seq(c["inputs"], "inputs")),
            kwargs=read_kwargs,
            outputs=self.value(c.get("outputs")),
            status=status,
            error=_opt_text(c.get("error"), "a call's error"),
            module_repr=_text(c.get("module_repr", ""), "module_repr"),
            params=_int(c.get("params", 0), "params"),
            duration_ms=_read_num(c.get("duration_ms", 0.0), "duration_ms"),
            call_site=_read_line(c.get("call_site")),
            units=_read_units(c.get("units")),
            grad=_read_grad(c.get("grad")),
        )

    def diagnosis(self, d: Any) -> Diagnosis:
        d = _dict(d, "a finding")
        op = None
        if d.get("op") is not None:
            o = _dict(d["op"], "a finding's op")
            kwargs = []
            for item in _seq(o["kwargs"], "op kwargs"):
                key, value = _seq(item, "an op kwarg", 2)
                kwargs.append((_text(key, "an op kwarg name"), self.value(value)))
            op = OpInfo(
                name=_str(o, "name"),
                operands=tuple(self.value(v) for v in _seq(o["operands"], "op operands")),
                kwargs=tuple(kwargs),
            )
        kind = _str(d, "kind")
        if kind not in ("error", "warning"):
            raise ValueError(f"bad finding kind {kind[:40]!r}")
        return Diagnosis(
            kind=kind,
            module=_str(d, "module"),
            summary=_str(d, "summary"),
            module_type=_text(d.get("module_type", ""), "module_type"),
            call=self.call_number(d.get("call"), "a finding's call"),
            line=_read_line(d.get("line")),
            op=op,
            details=tuple(_text(x, "a detail") for x in _seq(d.get("details", []), "details")),
            fixes=tuple(_text(x, "a fix") for x in _seq(d.get("fixes", []), "fixes")),
            code=_text(d.get("code", ""), "code"),
            exception=_opt_text(d.get("exception"), "exception"),
        )
