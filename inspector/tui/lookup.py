"""Questions the app asks of the recorded calls: which call a search names, whether an
output index exists."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from inspector.engine.records import Call, first_tensor


def call_matches(call: Call, text: str) -> bool:
    """`/` find: a path, a glob, a module type, or a plain part of a path."""
    return (
        call.path == text
        or fnmatch.fnmatchcase(call.path, text)
        or call.type == text
        or (text in call.path and not any(ch in text for ch in "*?["))
    )


def output_out_of_range(calls: Sequence[Call], index: int) -> str:
    """Why output `index` cannot be explained ("" when it can, or when the model's output
    is not known yet): contributions index the last dim of the model's output."""
    root = calls[0] if calls else None
    out = first_tensor(root.outputs) if root is not None and root.status == "ok" else None
    if out is None or not out.shape or index < out.shape[-1]:
        return ""
    size = out.shape[-1]
    return f"no output {index}: the model's output has {size} along its last dim (0 to {size - 1})"
