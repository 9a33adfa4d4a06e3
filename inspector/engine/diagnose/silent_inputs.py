"""Inputs that disagree with each other and pass without an error.

A Hugging Face model given an `attention_mask` of another batch or a shorter length than
`input_ids` may run on: the mask is broadcast or sliced where it is built, and the tokens it
does not cover are attended to (or masked) by accident. The premise is read from the root
call's recorded inputs only; a mask longer than the ids is legitimate (cached past tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inspector.engine.diagnose.context import warning_about
from inspector.engine.records import Diagnosis, TensorInfo
from inspector.engine.records import format_shape as fmt

if TYPE_CHECKING:
    from inspector.engine.records import Trace

PAIRS = (("attention_mask", "input_ids"), ("decoder_attention_mask", "decoder_input_ids"))


def mask_mismatch(trace: Trace) -> list[Diagnosis]:
    root = trace.calls[0] if trace.calls else None
    if root is None or root.kwargs is None:
        return []
    given = {name: v for name, v in root.kwargs.fields if isinstance(v, TensorInfo)}
    found: list[Diagnosis] = []
    for mask_name, ids_name in PAIRS:
        mask, ids = given.get(mask_name), given.get(ids_name)
        if mask is None or ids is None or mask.ndim != 2 or ids.ndim != 2:
            continue
        if mask.shape[0] == ids.shape[0] and mask.shape[1] >= ids.shape[1]:
            continue
        expected = fmt(ids.shape)
        if mask.shape == ids.shape[::-1]:
            found.append(
                warning_about(
                    root,
                    f"{ids_name} {fmt(ids.shape)} looks seq-first (seq, batch): "
                    f"{mask_name} is {fmt(mask.shape)}",
                    (
                        f"the model reads {ids_name} as (batch, seq): {ids.shape[0]} sequences "
                        f"of {ids.shape[1]} tokens, while {mask_name} describes "
                        f"{mask.shape[0]} of {mask.shape[1]}",
                    ),
                    (f"{ids_name} = {ids_name}.T gives {fmt(mask.shape)}, (batch, seq)",),
                    "input-seq-first",
                )
            )
            continue
        if mask.shape[0] != ids.shape[0]:
            what = f"a batch of {mask.shape[0]} masks for {ids.shape[0]} sequences"
        else:
            what = f"it covers {mask.shape[1]} of the {ids.shape[1]} tokens"
        found.append(
            warning_about(
                root,
                f"{mask_name} {fmt(mask.shape)} does not match {ids_name} {fmt(ids.shape)}: {what}",
                (
                    f"the model ran on, but {mask_name} must be {expected}, one entry per "
                    f"token of {ids_name}; the tokens it does not describe are masked or "
                    "attended to by accident",
                ),
                (f"build {mask_name} with {ids_name} (the tokenizer returns both): {expected}",),
                "input-mask-shape",
            )
        )
    return found
