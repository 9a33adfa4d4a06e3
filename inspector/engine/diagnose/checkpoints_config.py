"""A checkpoint saved from another Hugging Face config: the config values the shapes show.

Each size that differs suggests config attributes: those whose value in the model is that
size (the checkpoint's size is then their value there), a small multiple of one (GPT-2's
fused attention is 3 x n_embd), or a head count times the head size. A set of values is only
offered once a model built from it, on the meta device (no memory, the random generator put
back), has the checkpoint's shape for every key the rule looks at, the agreeing ones
included: a head count that changes the attention's projections is not taken for a width.
Only the library's own model classes are built so (a subclass's constructor is the user's
code, and a backbone loaded from a hub would download); other models get the widths.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from inspector.engine.diagnose.checkpoints_common import Pair, differing, model_entries, same
from inspector.engine.diagnose.checkpoints_report import Cause, Shape

# Tried first when several attributes have the same value.
PRIORITY = (
    "hidden_size", "n_embd", "d_model", "dim", "embed_dim", "hidden_dim", "width",
    "intermediate_size", "n_inner", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim",
    "num_labels", "vocab_size", "max_position_embeddings", "n_positions", "num_channels",
    "embedding_size", "hidden_sizes", "projection_dim", "num_attention_heads", "n_head",
    "num_key_value_heads", "head_dim",
)  # fmt: skip
HIDDEN = ("hidden_size", "n_embd", "d_model")
HEADS = ("num_attention_heads", "n_head", "num_key_value_heads")
SKIP_WORDS = ("layer", "_id", "token", "seed", "batch", "epoch", "step", "bucket", "window")
MAX_BUILDS = 8

Values = dict[str, int]


def _values(config: Any) -> Values:
    """The config's sizes: int attributes (list items as `name[i]`), ids and counts of layers
    left out."""
    found: Values = {}
    for name, value in vars(config).items():
        if name.startswith("_") or any(word in name for word in SKIP_WORDS):
            continue
        if type(value) is int and value > 1:
            found[name] = value
        elif isinstance(value, list | tuple) and all(type(v) is int for v in value):
            found.update({f"{name}[{i}]": v for i, v in enumerate(value) if v > 1})
    return found


def _rank(name: str) -> int:
    base = name.partition("[")[0]
    return PRIORITY.index(base) if base in PRIORITY else len(PRIORITY)


def _head_size(config: Any, values: Values) -> int | None:
    explicit = vars(config).get("head_dim")
    if type(explicit) is int:
        return explicit
    hidden = next((values[h] for h in HIDDEN if h in values), None)
    heads = next((values[h] for h in HEADS if h in values), None)
    return hidden // heads if hidden and heads and hidden % heads == 0 else None


def _candidates(config: Any, values: Values, have: int, saved: int) -> list[tuple[str, int]]:
    """Attribute values that would turn a size of `have` into `saved`, likeliest first."""
    exact = [(n, saved) for n in sorted(values, key=_rank) if values[n] == have]
    head = _head_size(config, values)
    heads = []
    if head and saved % head == 0:
        heads = [(n, saved // head) for n in HEADS if n in values and values[n] * head == have]
    multiples = []
    for name in sorted(values, key=_rank):
        k, rest = divmod(have, values[name])
        if rest == 0 and 2 <= k <= 4 and saved % k == 0:
            multiples.append((name, saved // k))
    return exact + heads + multiples


def config_cause(
    model: nn.Module, config: Any, agreed: dict[str, Shape | None], left: list[Pair]
) -> Cause | None:
    """The config values under which the model has the checkpoint's shapes for the tensors
    left, checked by building it; None when no small set of values does."""
    if not type(model).__module__.startswith("transformers.") or vars(config).get(
        "use_pretrained_backbone"
    ):
        return None  # only the library's own constructors are run, and none that downloads
    values = _values(config)
    sizes: Counter[tuple[int, int]] = Counter()
    for e, c in left:
        dims = differing(e.shape, c)
        if dims and e.shape is not None and c is not None:
            sizes.update((e.shape[d], c[d]) for d in dims)
    if not sizes:
        return None
    options = {pair: _candidates(config, values, *pair) for pair in sizes}
    order = [pair for pair, _ in sizes.most_common()]
    tried: list[dict[str, int]] = []
    for first in order:  # one value alone (a width moves every size it sets), then together
        tried += [dict([option]) for option in options[first][:3]]
        tried += [_greedy(options, order, option) for option in options[first][:3]]
    best: tuple[int, int, dict[str, int], tuple[str, ...]] | None = None
    builds = 0
    for settings in _unique(_keep_heads_dividing(config, values, s) for s in tried):
        if builds == MAX_BUILDS:
            break
        builds += 1
        built = _build(model, config, settings)
        if built is None or not all(k in built and same(built[k], c) for k, c in agreed.items()):
            continue
        keys = tuple(e.key for e, c in left if e.key in built and same(built[e.key], c))
        if keys and (best is None or (len(keys), -len(settings)) > best[:2]):
            best = (len(keys), -len(settings), settings, keys)
        if len(keys) == len(left):
            break
    return None if best is None else _cause(config, values, best[2], best[3])


def _unique(found: Iterable[dict[str, int]]) -> list[dict[str, int]]:
    out: list[dict[str, int]] = []
    for settings in found:
        if settings and settings not in out:
            out.append(settings)
    return out


def _greedy(
    options: dict[tuple[int, int], list[tuple[str, int]]],
    order: list[tuple[int, int]],
    forced: tuple[str, int],
) -> dict[str, int]:
    settings = dict([forced])
    for pair in order:
        if any(settings.get(name) == value for name, value in options[pair]):
            continue  # explained already
        for name, value in options[pair]:
            if settings.get(name, value) == value:
                settings.setdefault(name, value)
                break
    return settings


def _keep_heads_dividing(config: Any, values: Values, settings: dict[str, int]) -> dict[str, int]:
    """A new width the head count does not divide keeps the model's head size instead (the
    shapes do not show the head count)."""
    hidden = next((h for h in HIDDEN if h in settings), None)
    heads = next((h for h in HEADS[:2] if h in values), None)
    if hidden is None or heads is None or heads in settings or "head_dim" in values:
        return settings
    if settings[hidden] % values[heads] == 0 or values[hidden] % values[heads]:
        return settings
    size = values[hidden] // values[heads]
    return {**settings, heads: max(1, settings[hidden] // size)}


def _config_with(config: Any, settings: dict[str, int]) -> tuple[Any, dict[str, Any]]:
    """A copy of `config` with the values set, and the assignments as written in the fix."""
    written: dict[str, Any] = {}
    for name, value in sorted(settings.items(), key=lambda item: _rank(item[0])):
        base, _, index = name.partition("[")
        if index:
            current = list(written.get(base, vars(config)[base]))
            current[int(index.rstrip("]"))] = value
            written[base] = current
        else:
            written[name] = value
    changed = copy.deepcopy(config)
    for name, value in written.items():
        setattr(changed, name, value)
    return changed, written


def _build(
    model: nn.Module, config: Any, settings: dict[str, int]
) -> dict[str, Shape | None] | None:
    """The shapes of `type(model)` built with the values on the meta device, or None when it
    cannot be built so. The global random generator is put back; library logs and warnings
    of the build are held."""
    logger = logging.getLogger("transformers")
    level = logger.level
    try:
        changed, _ = _config_with(config, settings)
        logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]), torch.device("meta"):
            warnings.simplefilter("ignore")
            built = type(model)(changed)
        return {k: e.shape for k, e in model_entries(built).items()}
    except Exception:
        return None
    finally:
        logger.setLevel(level)


def _cause(config: Any, values: Values, settings: dict[str, int], keys: tuple[str, ...]) -> Cause:
    _, written = _config_with(config, settings)
    said = [
        f"config.{name}={value} (the model has {values[name]})"
        for name, value in sorted(settings.items(), key=lambda item: _rank(item[0]))
    ]
    text = f"the checkpoint was saved from a model with {', '.join(said)}: "
    text += f"{len(keys)} tensor(s) differ in those sizes, and a model built so has the "
    text += "checkpoint's shapes"
    heads = next((h for h in HEADS[:2] if type(vars(config).get(h)) is int), None)
    hidden = next((h for h in HIDDEN if h in settings), None)
    if heads and hidden and heads not in settings and type(vars(config).get("head_dim")) is not int:
        size = values[hidden] // vars(config)[heads]
        text += f"\nthe shapes do not show {heads}: take it from the checkpoint's config.json; "
        text += f"with the model's head size {size} it would be {settings[hidden] // size}"
    lines = ["import copy", "config = copy.deepcopy(model.config)"]
    lines += [f"config.{name} = {value!r}" for name, value in written.items()]
    lines.append("model = type(model)(config)")
    text += "\nbuild the model with the checkpoint's config (from_pretrained reads it), or as in"
    text += " the fix"
    return Cause("config", keys, text, code="\n".join(lines))
