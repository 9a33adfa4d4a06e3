"""A checkpoint that does not fit its model, explained: `inspector.check_state_dict`.

The model is only read: the names and shapes of its parameters and persistent buffers, as
`load_state_dict` would look them up (shared modules under every name they have). No tensor
is copied and nothing of the model's is called beyond reading attributes; a Hugging Face
`config` is read through its instance dict. The one thing run: to check a config value, the
library's own model class is built from a copy of the config on the meta device
(checkpoints_config.py).

Keys first: a prefix that, stripped, added or replaced, makes the names match (`module.` from
DistributedDataParallel, `_orig_mod.` from torch.compile, a backbone saved under its own
name). Then the shapes of the keys both sides have, by pattern (checkpoints_patterns.py).
What stays missing or unexpected is grouped by the shortest prefix that holds only such keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from torch import nn

from inspector.engine.diagnose.checkpoints_common import (
    Entry,
    checkpoint_shape,
    model_entries,
    same,
)
from inspector.engine.diagnose.checkpoints_patterns import explain_shapes
from inspector.engine.diagnose.checkpoints_report import Cause, Shape, StateDictCheck, q

__all__ = ["check_state_dict", "explain_load_error"]

# Groups of missing or unexpected keys named one by one; the rest are counted.
MAX_GROUPS = 8

WRAPPERS = {
    "module.": "saved from a DistributedDataParallel or DataParallel wrapper",
    "_orig_mod.": "saved from a torch.compile'd model",
}


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> StateDictCheck:
    """Every mismatch between `model` and `state_dict`, explained, without loading anything.

    For each tensor whose shape differs: both shapes and the likely cause (a grown
    vocabulary, a position table for another image or sequence size, a classifier for
    another number of classes, other input channels, a wider or narrower model) with the fix
    in numbers. Missing and unexpected keys are explained by a prefix when renaming makes
    them match, and grouped by prefix otherwise. `strict` is load_state_dict's: with False,
    missing and unexpected keys are allowed and only shapes must agree.

        result = inspector.check_state_dict(model, torch.load("ckpt.pt"))
        print(result)        # the report; result.ok, result.causes, result.fix
    """
    entries = model_entries(model)
    metadata = getattr(state_dict, "_metadata", None)
    ckpt = {str(k): checkpoint_shape(v) for k, v in state_dict.items()}
    absent = [k for k in entries if k not in ckpt]
    missing = [k for k in absent if not _tolerated(entries[k], metadata)]
    unexpected = [k for k in ckpt if k not in entries]
    causes: list[Cause] = []
    renamed = ckpt
    if absent and unexpected:
        found = find_rename(entries, ckpt, absent, unexpected)
        if found is not None:
            cause, renamed = found
            causes.append(cause)
    after_missing = [k for k in missing if k not in renamed]
    after_unexpected = [k for k in renamed if k not in entries]
    pairs = [
        (entries[k], renamed[k])
        for k in entries
        if k in renamed and not same(entries[k].shape, renamed[k])
    ]
    agreed = {k: renamed[k] for k in entries if k in renamed and same(entries[k].shape, renamed[k])}
    mismatches, shape_causes = explain_shapes(model, agreed, pairs)
    causes += shape_causes
    if after_missing:
        causes.append(_missing_cause(after_missing, set(entries), strict))
    if after_unexpected:
        causes.append(_unexpected_cause(after_unexpected, set(renamed), strict))
    matched = sum(1 for k in entries if k in ckpt and same(entries[k].shape, ckpt[k]))
    return StateDictCheck(
        model=type(model).__name__,
        strict=strict,
        model_keys=len(entries),
        checkpoint_keys=len(ckpt),
        matched=matched,
        mismatches=tuple(mismatches),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        causes=tuple(causes),
    )


def explain_load_error(
    error: BaseException, within: nn.Module | None = None
) -> StateDictCheck | None:
    """The check of the failing `nn.Module.load_state_dict` call that raised `error`, read
    from its frame (the module as `self`, the state dict it was given, `strict`); None when
    the error was not raised by load_state_dict itself, or (with `within`) the module loaded
    into is not `within` or one of its modules."""
    if not isinstance(error, RuntimeError):
        return None
    tb = error.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if frame.f_code is not nn.Module.load_state_dict.__code__:
        return None
    local = frame.f_locals
    module, state_dict = local.get("self"), local.get("state_dict")
    if not isinstance(module, nn.Module) or not isinstance(state_dict, Mapping):
        return None
    if within is not None and not any(m is module for m in within.modules()):
        return None
    result = check_state_dict(module, state_dict, strict=bool(local.get("strict", True)))
    return None if result.ok else result  # torch failed on something else: a copy, a hook


# -- the two sides ------------------------------------------------------------------------------


def _tolerated(entry: Entry, metadata: Any) -> bool:
    """A BatchNorm's `num_batches_tracked` missing from a checkpoint of the old format: torch
    fills it in."""
    if entry.name != "num_batches_tracked":
        return False
    if not isinstance(entry.module, nn.modules.batchnorm._NormBase):
        return False
    version = None
    if isinstance(metadata, Mapping):
        version = metadata.get(entry.path, {}).get("version")
    return version is None or version < 2


# -- names -------------------------------------------------------------------------------------


def _prefixes(keys: list[str], depth: int = 2) -> list[str]:
    """The most common leading components (with their dot) of `keys`, up to `depth` deep."""
    counts: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")[:-1]
        for n in range(1, min(depth, len(parts)) + 1):
            counts[".".join(parts[:n]) + "."] += 1
    return [p for p, _ in counts.most_common(6)]


def find_rename(
    entries: dict[str, Entry],
    ckpt: dict[str, Shape | None],
    missing: list[str],
    unexpected: list[str],
) -> tuple[Cause, dict[str, Shape | None]] | None:
    """A prefix that, replaced in the checkpoint's keys, makes missing keys appear: every
    unexpected key under it lands on a missing one, most with the model's shape. The one that
    resolves the most, as a Cause with the renaming, and the renamed checkpoint."""
    wanted = set(missing)
    best: tuple[int, str, str] | None = None
    for old in ["", *_prefixes(unexpected)]:
        for new in ["", *_prefixes(missing)]:
            if old == new:
                continue
            moved = [k for k in unexpected if k.startswith(old)]
            landed = [new + k[len(old) :] for k in moved]
            if not moved or not all(k in wanted for k in landed):
                continue
            fits = sum(1 for k, m in zip(moved, landed, strict=True) if entries[m].shape == ckpt[k])
            if fits * 2 < len(moved) or (len(moved) * 2 < len(missing) and old not in WRAPPERS):
                continue
            if best is None or len(moved) > best[0]:
                best = (len(moved), old, new)
    if best is None:
        return None
    _, old, new = best
    o, n = old.split(".")[:-1], new.split(".")[:-1]
    while o and n and o[-1] == n[-1]:  # "module.encoder." -> "encoder.": only "module."
        o.pop()
        n.pop()
    old, new = ".".join(o) + "." if o else "", ".".join(n) + "." if n else ""
    moved_keys = [k for k in ckpt if k.startswith(old)]
    others = [k for k in ckpt if not k.startswith(old)]
    keep_others = any(k in entries for k in others)
    renamed = {new + k[len(old) :]: ckpt[k] for k in moved_keys}
    if keep_others:
        renamed.update({k: ckpt[k] for k in others if k not in renamed})
    resolved = sum(1 for k in missing if k in renamed)
    text = _rename_text(old, new, len(moved_keys), len(ckpt), resolved, len(missing))
    only = "}" if not others or keep_others else f" if k.startswith({q(old)})}}"
    if old and not new:
        code = f"sd = {{k.removeprefix({q(old)}): v for k, v in sd.items(){only}"
    elif new and not old:
        code = f"sd = {{{q(new)} + k: v for k, v in sd.items()}}"
    elif others and keep_others:
        code = f"sd = {{({q(new)} + k[{len(old)}:] if k.startswith({q(old)}) else k): v"
        code += " for k, v in sd.items()}"
    else:
        code = f"sd = {{{q(new)} + k.removeprefix({q(old)}): v for k, v in sd.items(){only}"
    if others and not keep_others:
        dropped = _groups(others, set(ckpt))
        text += f"\nthe other {len(others)} key(s) have no place in the model: {dropped}"
    return Cause("prefix", tuple(missing), text, code=code), renamed


def _rename_text(old: str, new: str, moved: int, total: int, resolved: int, missing: int) -> str:
    every = "every key" if moved == total else f"{moved} of {total} keys"
    match = "exactly" if resolved == missing else f"for {resolved} of {missing} missing keys"
    if old and not new:
        why = WRAPPERS.get(old, f"saved from a model that held this one as `{old[:-1]}`")
        verb = "starts" if moved == total else "start"
        text = f"{every} of the checkpoint {verb} with {q(old)} ({why}); "
        return text + f"without it the keys match the model's {match}"
    if new and not old:
        text = f"the model's keys start with {q(new)} and the checkpoint's do not; "
        text += f"with it added they match {match}"
        if new.count(".") == 1:
            text += f"\nor load into the inner module: model.{new[:-1]}.load_state_dict(sd)"
        return text
    verb = "starts" if moved == total else "start"
    text = f"{every} of the checkpoint {verb} with {q(old)} where the model has {q(new)}; "
    return text + f"renamed, the keys match {match}"


def _under(keys: set[str] | list[str]) -> Counter[str]:
    """How many of `keys` lie under each prefix ("a.", "a.b.", ...)."""
    found: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        found.update(".".join(parts[:n]) + "." for n in range(1, len(parts)))
    return found


def _groups(keys: list[str], everything: set[str]) -> str:
    """`keys` by the shortest prefix under which every key of `everything` is one of them
    (numbered layers merged as `*`), with counts, largest first."""
    mine, total = _under(keys), _under(everything)
    found: list[list[str]] = []
    for key in keys:
        parts = key.split(".")
        group = parts
        for n in range(1, len(parts)):
            if mine[".".join(parts[:n]) + "."] == total[".".join(parts[:n]) + "."]:
                group = [*parts[:n], "*"]
                break
        found.append(group)
    # layer numbers that vary within a pattern become `*`; one that does not stays
    shapes: dict[tuple[str, ...], list[set[str]]] = {}
    for group in found:
        shape = tuple("#" if p.isdigit() else p for p in group)
        seen = shapes.setdefault(shape, [set() for _ in group])
        for i, part in enumerate(group):
            seen[i].add(part)
    counts: Counter[str] = Counter()
    for group in found:
        seen = shapes[tuple("#" if p.isdigit() else p for p in group)]
        counts[".".join("*" if len(seen[i]) > 1 else p for i, p in enumerate(group))] += 1
    listed = counts.most_common(MAX_GROUPS)
    text = ", ".join(f"{g} ({n})" if n > 1 or g.endswith("*") else g for g, n in listed)
    rest = len(counts) - len(listed)
    if rest:
        text += f" and {rest} more group(s) ({sum(counts.values()) - sum(n for _, n in listed)})"
    return text


def _missing_cause(missing: list[str], model_keys: set[str], strict: bool) -> Cause:
    text = f"{len(missing)} key(s) of the model are not in the checkpoint: "
    text += _groups(missing, model_keys)
    text += (
        "\nwith strict=False they keep the values they have now (fine for a part added after "
        "the checkpoint was saved, such as a new head or adapter)"
        if strict
        else "\nstrict=False: they keep the values they have now"
    )
    return Cause("missing", tuple(missing), text, strict_false=True)


def _unexpected_cause(unexpected: list[str], ckpt_keys: set[str], strict: bool) -> Cause:
    text = f"{len(unexpected)} key(s) of the checkpoint have no place in the model: "
    text += _groups(unexpected, ckpt_keys)
    text += (
        "\nwith strict=False they are ignored (a part of the saved model this one does not have)"
        if strict
        else "\nstrict=False: they are ignored"
    )
    return Cause("unexpected", tuple(unexpected), text, strict_false=True)
