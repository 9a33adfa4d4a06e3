"""The result of comparing a model with a state dict: immutable values and how they read.

`StateDictCheck` is what `inspector.check_state_dict` returns and what `inspector.explain()`
adds as a note to a failing `load_state_dict`. It holds strings and shapes only, never the
model or a tensor.
"""

from __future__ import annotations

import html
import json
import textwrap
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]

# Tensors listed one per line; past this many the rest are counted by cause.
MAX_LISTED = 12
# Explanations wrap at this width; code lines never do.
WIDTH = 96

PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{body}</pre>"
)


def q(text: str) -> str:
    """`text` as a double-quoted Python string literal."""
    return json.dumps(text)


def shape_text(shape: Shape | None) -> str:
    if shape is None:
        return "not a tensor"
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True, slots=True)
class TensorMismatch:
    """One tensor whose shape differs: the model's key, both shapes, the cause's kind."""

    key: str
    model_shape: Shape
    checkpoint_shape: Shape | None  # None: the checkpoint's value is not a tensor
    cause: str


@dataclass(frozen=True, slots=True)
class Cause:
    """Why some keys do not load, and what to do about it.

    `code` runs before the load and `after` after it, with `model`, `sd` (the state dict),
    `torch` and `nn` in scope; `strict_false` says the load must be `strict=False` (keys left
    as initialised or ignored on purpose). An empty `code` with `strict_false` False means
    the fix is a change to the model's definition, described in `text`.
    """

    kind: str  # "prefix", "vocabulary", "position table", "classes", "input channels",
    # "config", "width", "shape", "missing", "unexpected"
    keys: tuple[str, ...]
    text: str
    code: str = ""
    after: str = ""
    strict_false: bool = False

    @property
    def fixable(self) -> bool:
        return bool(self.code or self.after or self.strict_false)


@dataclass(frozen=True, slots=True)
class StateDictCheck:
    """Every difference between a model's state dict and a checkpoint, explained.

    `missing` and `unexpected` are the keys `load_state_dict` would report as they are;
    `mismatches` are the tensors whose shapes differ (named by the model's keys, after the
    renaming a `prefix` cause describes). `ok` says whether `load_state_dict(sd,
    strict=strict)` would succeed; `fix` is one snippet applying every cause's fix, then the
    load (None when a fix needs the model's definition changed).
    """

    model: str
    strict: bool
    model_keys: int
    checkpoint_keys: int
    matched: int
    mismatches: tuple[TensorMismatch, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    causes: tuple[Cause, ...]

    @property
    def ok(self) -> bool:
        keys_ok = not self.strict or not (self.missing or self.unexpected)
        return keys_ok and not self.mismatches

    @property
    def fixes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.causes if c.code)

    @property
    def load(self) -> str:
        """The load call to make once the fixes are applied."""
        loose = not self.strict or any(c.strict_false for c in self.causes)
        return "model.load_state_dict(sd, strict=False)" if loose else "model.load_state_dict(sd)"

    @property
    def fix(self) -> str | None:
        if self.ok or not all(c.fixable for c in self.causes):
            return None
        lines = [c.code for c in self.causes if c.code]
        lines.append(self.load)
        lines += [c.after for c in self.causes if c.after]
        return "\n".join(lines)

    def headline(self) -> str:
        call = f"load_state_dict into {self.model} (strict={self.strict})"
        if self.ok and not (self.missing or self.unexpected):
            return (
                f"the state dict matches {self.model}: {self.matched} of {self.model_keys} "
                "tensors, same names and shapes"
            )
        if self.ok:
            return (
                f"{call} loads {self.matched} of {self.model_keys} tensors: "
                f"{len(self.missing)} stay as initialised, {len(self.unexpected)} checkpoint "
                "key(s) are ignored"
            )
        parts = []
        if self.mismatches:
            parts.append(f"{len(self.mismatches)} tensor(s) differ in shape")
        if self.strict and self.missing:
            parts.append(f"{len(self.missing)} key(s) missing from the checkpoint")
        if self.strict and self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s)")
        return f"{call} fails: " + ", ".join(parts)

    def lines(self) -> list[str]:
        out = [self.headline()]
        if self.mismatches:
            shown = self.mismatches[:MAX_LISTED]
            width = max(len(m.key) for m in shown)
            mw = max(len(shape_text(m.model_shape)) for m in shown)
            cw = max(len(shape_text(m.checkpoint_shape)) for m in shown)
            for m in shown:
                out.append(
                    f"  {m.key:<{width}}  model {shape_text(m.model_shape):<{mw}}  "
                    f"checkpoint {shape_text(m.checkpoint_shape):<{cw}}  {m.cause}"
                )
            rest = self.mismatches[MAX_LISTED:]
            if rest:
                kinds: dict[str, int] = {}
                for m in rest:
                    kinds[m.cause] = kinds.get(m.cause, 0) + 1
                counted = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
                out.append(f"  ... and {len(rest)} more ({counted})")
        for cause in self.causes:
            for n, line in enumerate(cause.text.splitlines()):
                first = f"{cause.kind}: " if n == 0 else "  "
                out += textwrap.wrap(
                    line, WIDTH, initial_indent=first, subsequent_indent="    ",
                    break_long_words=False, break_on_hyphens=False,
                )  # fmt: skip
        fix = self.fix
        if fix is not None:
            out.append("fix:")
            out += ["    " + line for line in fix.splitlines()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<StateDictCheck {self.headline()}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        lines = self.lines()
        color = "#2e7d32" if self.ok else "#c62828"
        body = [f'<span style="color:{color};font-weight:bold">{html.escape(lines[0])}</span>']
        for line in lines[1:]:
            escaped = html.escape(line)
            if not line.startswith(" ") and ":" in line:
                head, _, tail = escaped.partition(":")
                escaped = f'<span style="font-weight:bold">{head}:</span>{tail}'
            body.append(escaped)
        return PRE.format(body="\n".join(body))
