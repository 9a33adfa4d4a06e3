"""Plain JSON for traces: no pickle, nothing executed on load, strict validation on read.

Every record is written as an object tagged with its kind ("t" for TensorInfo, "s" for
Struct, "tuple"), so a tuple reads back as a tuple and a string as a string.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from inspector.engine.records import (
    Call,
    Diagnosis,
    Gradient,
    OpInfo,
    SourceLine,
    Stats,
    Struct,
    TensorInfo,
    Units,
    Value,
)

if TYPE_CHECKING:
    from inspector.engine.trace import Trace

FORMAT = "torch-inspector-trace"
VERSION = 1


class TraceFormatError(ValueError):
    """A trace file that is not valid torch-inspector JSON; the message says what is wrong."""


def trace_to_json(trace: Trace, *, indent: int | None = None) -> str:
    error = None
    if trace.error is not None:
        type_name = getattr(trace.error, "type_name", type(trace.error).__name__)
        error = {"type": type_name, "message": str(trace.error)}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "calls": [_call(c) for c in trace.calls],
        "error": error,
        "findings": [_diagnosis(d) for d in trace.findings],
    }
    return json.dumps(doc, indent=indent, allow_nan=True)


def trace_from_json(text: str) -> Trace:
    from inspector.engine.trace import RecordedError, Trace

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(f"not a trace file: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TraceFormatError(f"not a trace file: expected a JSON object with format={FORMAT!r}")
    if doc.get("version") != VERSION:
        raise TraceFormatError(
            f"unsupported trace version {doc.get('version')!r} (this version reads {VERSION})"
        )
    try:
        calls = [_read_call(c) for c in _list(doc, "calls")]
        findings = [_read_diagnosis(d) for d in _list(doc, "findings")]
        err = doc.get("error")
        error = None
        if err is not None:
            error = RecordedError(_str(err, "type"), _str(err, "message"))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TraceFormatError):
            raise
        raise TraceFormatError(f"malformed trace file: {exc}") from None
    for i, call in enumerate(calls):
        if call.seq != i or (call.parent is not None and not 0 <= call.parent < i):
            raise TraceFormatError(f"malformed trace file: call {i} is out of order")
    return Trace(calls, error=error, findings=findings)


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


# -- reading ------------------------------------------------------------------------------


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc[key]
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list")
    return value


def _str(doc: Any, key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string")
    return value


def _read_num(x: Any) -> float:
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {x!r}")
        return float(x)
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise TypeError(f"expected a number, got {type(x).__name__}")
    return float(x)


def _read_value(v: Any) -> Value:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if not isinstance(v, dict):
        raise TypeError(f"unexpected value {v!r}")
    if "t" in v:
        shape, dtype, device, requires_grad, layout, contiguous = v["t"]
        stats = v.get("stats")
        return TensorInfo(
            shape=tuple(int(d) for d in shape),
            dtype=str(dtype),
            device=str(device),
            requires_grad=bool(requires_grad),
            stats=_read_stats(stats) if stats is not None else None,
            layout=str(layout),
            contiguous=bool(contiguous),
            producer=_opt_int(v.get("producer")),
            view_of=_opt_int(v.get("view_of")),
        )
    if "s" in v:
        return Struct(str(v["s"]), tuple((str(k), _read_value(x)) for k, x in v["fields"]))
    if "tuple" in v:
        return tuple(_read_value(x) for x in v["tuple"])
    if "float" in v:
        return _read_num(v["float"])
    raise TypeError(f"unexpected value {v!r}")


def _opt_int(x: Any) -> int | None:
    if x is None:
        return None
    if not isinstance(x, int) or isinstance(x, bool):
        raise TypeError(f"expected an integer, got {x!r}")
    return x


def _read_stats(s: Any) -> Stats:
    numel, mean, std, mn, mx, nan, inf, zero, hist, hist_range, sampled = s
    return Stats(
        numel=int(numel),
        mean=_read_num(mean),
        std=_read_num(std),
        min=_read_num(mn),
        max=_read_num(mx),
        nan=int(nan),
        inf=int(inf),
        zero_fraction=_read_num(zero),
        histogram=tuple(int(c) for c in hist),
        histogram_range=(_read_num(hist_range[0]), _read_num(hist_range[1])),
        sampled=int(sampled),
    )


def _read_line(x: Any) -> SourceLine | None:
    if x is None:
        return None
    file, lineno, text, function = x
    return SourceLine(str(file), int(lineno), str(text), str(function))


def _read_call(c: Any) -> Call:
    if not isinstance(c, dict):
        raise TypeError("each call must be an object")
    kwargs = c.get("kwargs")
    read_kwargs = _read_value(kwargs) if kwargs is not None else None
    if read_kwargs is not None and not isinstance(read_kwargs, Struct):
        raise TypeError("call kwargs must be a struct")
    status = _str(c, "status")
    if status not in ("running", "ok", "error"):
        raise ValueError(f"bad call status {status!r}")
    return Call(
        seq=int(c["seq"]),
        path=_str(c, "path"),
        index=int(c["index"]),
        type=_str(c, "type"),
        depth=int(c["depth"]),
        parent=_opt_int(c.get("parent")),
        inputs=tuple(_read_value(v) for v in c["inputs"]),
        kwargs=read_kwargs,
        outputs=_read_value(c.get("outputs")),
        status=status,
        error=c.get("error"),
        module_repr=str(c.get("module_repr", "")),
        params=int(c.get("params", 0)),
        duration_ms=_read_num(c.get("duration_ms", 0.0)),
        call_site=_read_line(c.get("call_site")),
        units=_read_units(c.get("units")),
        grad=_read_grad(c.get("grad")),
    )


def _read_units(u: Any) -> Units | None:
    if u is None:
        return None
    if not isinstance(u, dict):
        raise TypeError("call units must be an object")
    saturated = u.get("saturated")
    return Units(
        axis=int(u["axis"]),
        count=int(u["count"]),
        dead=tuple(int(i) for i in u["dead"]),
        saturated=_read_num(saturated) if saturated is not None else None,
    )


def _read_grad(g: Any) -> Gradient | None:
    if g is None:
        return None
    if not isinstance(g, dict):
        raise TypeError("call grad must be an object")
    return Gradient(
        outputs=tuple(_read_stats(s) if s is not None else None for s in g["outputs"]),
        params=tuple(
            (str(name), _read_num(grad), _read_num(size)) for name, grad, size in g["params"]
        ),
        order=int(g["order"]),
    )


def _read_diagnosis(d: Any) -> Diagnosis:
    op = None
    if d.get("op") is not None:
        o = d["op"]
        op = OpInfo(
            name=_str(o, "name"),
            operands=tuple(_read_value(v) for v in o["operands"]),
            kwargs=tuple((str(k), _read_value(v)) for k, v in o["kwargs"]),
        )
    kind = _str(d, "kind")
    if kind not in ("error", "warning"):
        raise ValueError(f"bad finding kind {kind!r}")
    return Diagnosis(
        kind=kind,
        module=_str(d, "module"),
        summary=_str(d, "summary"),
        module_type=str(d.get("module_type", "")),
        call=_opt_int(d.get("call")),
        line=_read_line(d.get("line")),
        op=op,
        details=tuple(str(x) for x in d.get("details", [])),
        fixes=tuple(str(x) for x in d.get("fixes", [])),
        code=str(d.get("code", "")),
        exception=d.get("exception"),
    )
