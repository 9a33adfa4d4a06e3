"""A checkpoint saved from another Hugging Face config: the config values the shapes show.

Each dimension that differs votes for the config attributes whose value in the model is that
size (or a small multiple of one already voted for, as GPT-2's fused attention is 3 x n_embd),
with the checkpoint's size as the attribute's value there. Attributes are read from the
config's instance dict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

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
HEADS = ("num_attention_heads", "n_head")
SKIP_WORDS = ("layer", "_id", "token", "seed", "batch", "epoch", "step", "bucket", "window")


def _values(config: Any) -> dict[str, int]:
    """The config's sizes: int attributes (list items as `name[i]`), ids and counts of layers
    left out."""
    found: dict[str, int] = {}
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


def config_cause(config: Any, shaped: list[tuple[str, Shape, Shape]]) -> Cause | None:
    """The config attributes that explain every differing dimension of some tensors, as one
    Cause that rebuilds the model from a copy of its config with the checkpoint's values."""
    values = _values(config)
    by_size: dict[int, list[str]] = defaultdict(list)
    for name in sorted(values, key=_rank):
        by_size[values[name]].append(name)
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    pending: list[tuple[str, int, int]] = []
    for key, have, saved in shaped:
        if len(have) != len(saved):
            continue
        for m, c in zip(have, saved, strict=True):
            if m == c:
                continue
            if m in by_size:
                votes[by_size[m][0]][c] += 1
            else:
                pending.append((key, m, c))
    for _, m, c in pending:  # a multiple of a voted size: fused projections, 4x MLPs
        for name in list(votes):
            k, rest = divmod(m, values[name])
            if rest == 0 and 2 <= k <= 4 and c % k == 0:
                votes[name][c // k] += 1
                break
    chosen = {name: counts.most_common(1)[0][0] for name, counts in votes.items()}
    explained: list[str] = []
    for key, have, saved in shaped:
        if len(have) != len(saved) or have == saved:
            continue
        if all(m == c or _explains(chosen, values, m, c) for m, c in zip(have, saved, strict=True)):
            explained.append(key)
    if not explained:
        return None
    used = {n: v for n, v in chosen.items() if any(_uses(n, v, values, s) for s in shaped)}
    return _cause(config, values, used, tuple(explained))


def _explains(chosen: dict[str, int], values: dict[str, int], m: int, c: int) -> bool:
    for name, saved in chosen.items():
        have = values[name]
        if have == m and saved == c:
            return True
        k, rest = divmod(m, have)
        if rest == 0 and 2 <= k <= 4 and c == k * saved:
            return True
    return False


def _uses(name: str, saved: int, values: dict[str, int], shapes: tuple[str, Shape, Shape]) -> bool:
    _, have, ckpt = shapes
    if len(have) != len(ckpt):
        return False
    return any(
        m != c and _explains({name: saved}, values, m, c) for m, c in zip(have, ckpt, strict=True)
    )


def _cause(
    config: Any, values: dict[str, int], used: dict[str, int], keys: tuple[str, ...]
) -> Cause:
    settings: dict[str, Any] = {}
    said = []
    for name, saved in sorted(used.items(), key=lambda item: _rank(item[0])):
        said.append(f"config.{name}={saved} (the model has {values[name]})")
        base, _, index = name.partition("[")
        if index:
            current = list(settings.get(base, vars(config)[base]))
            current[int(index.rstrip("]"))] = saved
            settings[base] = current
        else:
            settings[name] = saved
    text = f"the checkpoint was saved from a model with {', '.join(said)}: "
    text += f"{len(keys)} tensor(s) differ in those sizes"
    heads = next((h for h in HEADS if type(vars(config).get(h)) is int), None)
    hidden = next((h for h in HIDDEN if h in settings), None)
    if heads and hidden and type(vars(config).get("head_dim")) is not int:
        count = vars(config)[heads]
        size = values[hidden] // count
        text += f"\nthe shapes do not show {heads}: take it from the checkpoint's config.json; "
        text += f"with the model's head size {size} it would be {settings[hidden] // size}"
        if settings[hidden] % count:
            settings[heads] = settings[hidden] // size
    lines = ["import copy", "config = copy.deepcopy(model.config)"]
    lines += [f"config.{name} = {value!r}" for name, value in settings.items()]
    lines.append("model = type(model)(config)")
    text += "\nbuild the model with the checkpoint's config (from_pretrained reads it), or as in"
    text += " the fix"
    return Cause("config", keys, text, code="\n".join(lines))
