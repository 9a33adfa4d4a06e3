"""Strict reading of a trace document's parts: every field checked for its type and range.

Bad input raises TypeError, ValueError or KeyError with a short reason; `serialize.load`
turns them into a TraceFormatError. A call number anywhere (a producer, a finding's call)
must name one of the document's calls.
"""

from __future__ import annotations

from typing import Any

from inspector.engine.records.calls import Call, Diagnosis, OpInfo, SourceLine
from inspector.engine.records.tensors import Gradient, Stats, Struct, TensorInfo, Units, Value

# Bounds on what a document may hold, beyond its types: sizes no recorded trace comes near.
MAX_NESTING = 64  # values inside values (describe stops at 8)
MAX_DIMS = 256
MAX_BINS = 4096
MAX_COUNT = 2**63 - 1  # element counts, parameter counts, dimensions, line numbers


def reason(exc: BaseException) -> str:
    """What a read error says is wrong, short: a KeyError names the missing field."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return str(exc)[:200]


def as_object(x: Any, what: str) -> dict[str, Any]:
    """`x`, which must be a JSON object; `what` names it in the error."""
    if not isinstance(x, dict):
        raise TypeError(f"{what} must be an object, got {_kind(x)}")
    return x


def _seq(x: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(x, list):
        raise TypeError(f"{what} must be a list, got {_kind(x)}")
    if length is not None and len(x) != length:
        raise ValueError(f"{what} must have {length} items, not {len(x)}")
    return x


def _fields(x: Any, what: str, names: tuple[str, ...], named: bool) -> list[Any]:
    """A record's fields in the order of `names`: an object with those keys (version 2) or,
    where `named` is False (version 1), an array of exactly that many items."""
    if not named:
        return _seq(x, what, len(names))
    x = as_object(x, what)
    return [x[name] for name in names]


_STATS = (
    "numel",
    "mean",
    "std",
    "min",
    "max",
    "nan",
    "inf",
    "zero_fraction",
    "histogram",
    "histogram_range",
    "sampled",
)
_LINE = ("file", "lineno", "text", "function")
_TENSOR = ("shape", "dtype", "device", "requires_grad", "layout", "contiguous")
_PARAM_GRAD = ("name", "grad_norm", "norm")


def _kind(x: Any) -> str:
    return "null" if x is None else type(x).__name__


def list_field(doc: dict[str, Any], key: str) -> list[Any]:
    """The list under `key` in `doc`."""
    return _seq(doc[key], repr(key))


def text_field(doc: Any, key: str) -> str:
    """The string under `key` in `doc`, which must be a JSON object."""
    return as_text(as_object(doc, "a record")[key], repr(key))


def as_text(x: Any, what: str) -> str:
    """`x`, which must be a string; `what` names it in the error."""
    if not isinstance(x, str):
        raise TypeError(f"{what} must be a string, got {_kind(x)}")
    return x


def _opt_text(x: Any, what: str) -> str | None:
    return None if x is None else as_text(x, what)


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


def _read_stats(s: Any, named: bool) -> Stats:
    numel, mean, std, mn, mx, nan, inf, zero, hist, hist_range, sampled = _fields(
        s, "stats", _STATS, named
    )
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


def _read_line(x: Any, named: bool) -> SourceLine | None:
    if x is None:
        return None
    file, lineno, text, function = _fields(x, "a source line", _LINE, named)
    return SourceLine(
        as_text(file, "file"),
        _int(lineno, "lineno"),
        as_text(text, "the line's text"),
        as_text(function, "function"),
    )


def _read_units(u: Any) -> Units | None:
    if u is None:
        return None
    u = as_object(u, "call units")
    count = _int(u["count"], "units count")
    saturated = u.get("saturated")
    return Units(
        axis=_int(u["axis"], "units axis", hi=MAX_DIMS),
        count=count,
        dead=tuple(_int(i, "a dead unit", hi=max(count - 1, 0)) for i in _seq(u["dead"], "dead")),
        saturated=_read_num(saturated, "saturated") if saturated is not None else None,
    )


def _read_grad(g: Any, named: bool) -> Gradient | None:
    if g is None:
        return None
    g = as_object(g, "call grad")
    params = []
    for item in _seq(g["params"], "grad params"):
        name, grad, size = _fields(item, "a parameter gradient", _PARAM_GRAD, named)
        params.append((as_text(name, "a parameter name"), _read_num(grad), _read_num(size)))
    return Gradient(
        outputs=tuple(
            _read_stats(s, named) if s is not None else None for s in _seq(g["outputs"], "outputs")
        ),
        params=tuple(params),
        order=_int(g["order"], "grad order", lo=-1),
    )


class RecordReader:
    """Reads calls, values and findings of a document with `calls` calls: a call number in
    any of them (a producer, a diagnosis's call) must name one of those calls. `version` is
    the document's: 1 wrote tensors, statistics and lines as arrays, 2 as named fields."""

    def __init__(self, calls: int, version: int = 2) -> None:
        self.calls = calls
        self.named = version >= 2

    def call_number(self, x: Any, what: str) -> int | None:
        return _opt_int(x, what, hi=self.calls - 1)

    def value(self, v: Any, depth: int = 0) -> Value:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)):  # any number json reads prints again
            return v
        if depth >= MAX_NESTING:
            raise ValueError(f"values nested more than {MAX_NESTING} deep")
        v = as_object(v, "a value")
        tag = "tensor" if self.named else "t"
        if tag in v:
            shape, dtype, device, requires_grad, layout, contiguous = _fields(
                v[tag], "a tensor", _TENSOR, self.named
            )
            stats = v.get("stats")
            return TensorInfo(
                shape=tuple(_int(d, "a dimension", lo=-1) for d in _seq(shape, "shape")),
                dtype=as_text(dtype, "dtype"),
                device=as_text(device, "device"),
                requires_grad=_bool(requires_grad, "requires_grad"),
                stats=_read_stats(stats, self.named) if stats is not None else None,
                layout=as_text(layout, "layout"),
                contiguous=_bool(contiguous, "contiguous"),
                producer=self.call_number(v.get("producer"), "producer"),
                view_of=self.call_number(v.get("view_of"), "view_of"),
            )
        if "s" in v:
            fields = []
            for item in _seq(v["fields"], "struct fields"):
                key, value = _seq(item, "a struct field", 2)
                fields.append((as_text(key, "a field name"), self.value(value, depth + 1)))
            return Struct(as_text(v["s"], "a struct type"), tuple(fields))
        if "tuple" in v:
            return tuple(self.value(x, depth + 1) for x in _seq(v["tuple"], "a tuple"))
        if "float" in v:
            return _read_num(v["float"])
        raise ValueError(f"unknown value with keys {sorted(map(str, v))[:4]}")

    def call(self, c: Any, i: int) -> Call:
        c = as_object(c, f"call {i}")
        kwargs = c.get("kwargs")
        read_kwargs = self.value(kwargs) if kwargs is not None else None
        if read_kwargs is not None and not isinstance(read_kwargs, Struct):
            raise TypeError("call kwargs must be a struct")
        status = text_field(c, "status")
        if status not in ("running", "ok", "error"):
            raise ValueError(f"bad call status {status[:40]!r}")
        return Call(
            seq=_int(c["seq"], "seq", hi=self.calls),
            path=text_field(c, "path"),
            index=_int(c["index"], "index", hi=self.calls),
            type=text_field(c, "type"),
            depth=_int(c["depth"], "depth", hi=self.calls),
            parent=_opt_int(c.get("parent"), "parent"),  # its order is checked with the rest
            inputs=tuple(self.value(v) for v in _seq(c["inputs"], "inputs")),
            kwargs=read_kwargs,
            outputs=self.value(c.get("outputs")),
            status=status,
            error=_opt_text(c.get("error"), "a call's error"),
            module_repr=as_text(c.get("module_repr", ""), "module_repr"),
            params=_int(c.get("params", 0), "params"),
            duration_ms=_read_num(c.get("duration_ms", 0.0), "duration_ms"),
            call_site=_read_line(c.get("call_site"), self.named),
            units=_read_units(c.get("units")),
            grad=_read_grad(c.get("grad"), self.named),
        )

    def diagnosis(self, d: Any) -> Diagnosis:
        d = as_object(d, "a finding")
        op = None
        if d.get("op") is not None:
            o = as_object(d["op"], "a finding's op")
            kwargs = []
            for item in _seq(o["kwargs"], "op kwargs"):
                key, value = _seq(item, "an op kwarg", 2)
                kwargs.append((as_text(key, "an op kwarg name"), self.value(value)))
            op = OpInfo(
                name=text_field(o, "name"),
                operands=tuple(self.value(v) for v in _seq(o["operands"], "op operands")),
                kwargs=tuple(kwargs),
            )
        kind = text_field(d, "kind")
        if kind not in ("error", "warning"):
            raise ValueError(f"bad finding kind {kind[:40]!r}")
        return Diagnosis(
            kind=kind,
            module=text_field(d, "module"),
            summary=text_field(d, "summary"),
            module_type=as_text(d.get("module_type", ""), "module_type"),
            call=self.call_number(d.get("call"), "a finding's call"),
            line=_read_line(d.get("line"), self.named),
            op=op,
            details=tuple(as_text(x, "a detail") for x in _seq(d.get("details", []), "details")),
            fixes=tuple(as_text(x, "a fix") for x in _seq(d.get("fixes", []), "fixes")),
            code=as_text(d.get("code", ""), "code"),
            exception=_opt_text(d.get("exception"), "exception"),
        )
