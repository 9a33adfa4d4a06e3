"""Inputs that disagree with each other and pass without an error.

A Hugging Face model given an `attention_mask` of another batch or a shorter length than
`input_ids` may run on: the mask is broadcast or sliced where it is built, and the tokens it
does not cover are attended to (or masked) by accident. The premise is read from the root
call's recorded inputs only; a mask longer than the ids is legitimate when past tokens are
cached (`past_key_values` or `cache_position` given), and a bug otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inspector.engine.diagnose.context import warning_about
from inspector.engine.records import Diagnosis, TensorInfo
from inspector.engine.records import format_shape as fmt

if TYPE_CHECKING:
    from inspector.engine.records import Trace

PAIRS = (("attention_mask", "input_ids"), ("decoder_attention_mask", "decoder_input_ids"))


def mask_mismatch(trace: Trace, modules: Sequence[Any] = ()) -> list[Diagnosis]:
    root = trace.calls[0] if trace.calls else None
    if root is None:
        return []
    fields = list(root.kwargs.fields) if root.kwargs is not None else []
    fields += _positional(root, modules)  # model(ids, attention_mask=...): ids by position
    given = {name: v for name, v in fields if isinstance(v, TensorInfo)}
    cached = any(
        name in ("past_key_values", "cache_position") and v is not None for name, v in fields
    )
    found: list[Diagnosis] = []
    for mask_name, ids_name in PAIRS:
        mask, ids = given.get(mask_name), given.get(ids_name)
        if mask is None or ids is None or mask.ndim != 2 or ids.ndim != 2:
            continue
        if mask.shape == ids.shape or (
            mask.shape[0] == ids.shape[0] and mask.shape[1] > ids.shape[1] and cached
        ):
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
        elif mask.shape[1] > ids.shape[1]:
            what = (f"{mask.shape[1]} entries for {ids.shape[1]} tokens, and no past tokens "
                    "are cached (no past_key_values)")  # fmt: skip
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


def _positional(root: Any, modules: Sequence[Any]) -> list[tuple[str, Any]]:
    """The root call's positional inputs under the names its forward gives them."""
    live = modules[root.seq]() if root.seq < len(modules) else None
    if live is None or not root.inputs:
        return []
    own = vars(live).get("forward")  # a forward set on the instance: read it there
    names = _signature_names(own, bound=True) if own is not None else _positional_names(
        type(live)
    )  # fmt: skip
    return list(zip(names, root.inputs, strict=False))


_NAMES: dict[type, tuple[str, ...]] = {}


def _positional_names(cls: type) -> tuple[str, ...]:
    """The positional parameter names of a module class's forward, once per class."""
    if cls in _NAMES:
        return _NAMES[cls]
    names = _signature_names(getattr(cls, "forward", None), bound=False)
    if len(_NAMES) < 512:
        _NAMES[cls] = names
    return names


def _signature_names(function: Any, bound: bool) -> tuple[str, ...]:
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = tuple(p.name for p in params if p.kind in kinds)
    return names if bound else names[1:]
