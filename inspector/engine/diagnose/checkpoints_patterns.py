"""Why a checkpoint's tensor has another shape than the model's, by pattern, in order: a
grown vocabulary, a position table for another size, a classifier for other classes, other
input channels, a Hugging Face config value, a wider or narrower layer. Each rule takes the
mismatches left by the ones before it and returns Causes with the fix in numbers."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable

from torch import nn

from inspector.engine.diagnose.checkpoints_common import (
    Entry,
    Pair,
    assign,
    config_has,
    differing,
    hf_config,
    module_ref,
    one_dim,
)
from inspector.engine.diagnose.checkpoints_config import config_cause
from inspector.engine.diagnose.checkpoints_positions import position_rule
from inspector.engine.diagnose.checkpoints_report import (
    Cause,
    Shape,
    TensorMismatch,
    q,
    shape_text,
)

Rule = Callable[[nn.Module, list[Pair]], list[Cause]]


# A classifier's own name (the whole last part of its path), or the model's last Linear.
HEAD = re.compile(
    r"classifier|heads?|fc|score|logits|lm_head|cls|out|output|out_proj|classification_head|"
    r"predictor|last_linear|last_layer|final|final_layer",
    re.IGNORECASE,
)
NOT_VOCAB = re.compile(r"type|segment|pos|wpe|speaker|lang|relative|bias|bucket", re.IGNORECASE)
CHANNELS = {1: "grayscale", 3: "RGB", 4: "RGBA"}


def explain_shapes(
    model: nn.Module, agreed: dict[str, Shape | None], pairs: list[Pair]
) -> tuple[list[TensorMismatch], list[Cause]]:
    """The mismatched tensors, each with its cause's kind, and the causes (a rebuild from the
    config first: the other fixes apply to the rebuilt model). `agreed`: the keys whose
    shapes already match, which a rebuilt model must keep."""

    def from_config(model: nn.Module, left: list[Pair]) -> list[Cause]:
        config = hf_config(model)
        if config is None:
            return []
        cause = config_cause(model, config, agreed, left)
        return [cause] if cause is not None else []

    left = list(pairs)
    causes: list[Cause] = []
    kinds: dict[str, str] = {}
    rules: list[Rule] = [
        _not_tensors, _vocabulary, position_rule, _classes, _in_channels, from_config, _width
    ]  # fmt: skip
    for rule in rules:
        for cause in rule(model, left):
            causes.append(cause)
            for key in cause.keys:
                kinds.setdefault(key, cause.kind)
        left = [p for p in left if p[0].key not in kinds]
    causes.sort(key=lambda c: c.kind != "config")
    mismatches = [
        TensorMismatch(e.key, e.shape or (), c, kinds.get(e.key, "shape")) for e, c in pairs
    ]
    return mismatches, causes


# -- rules -------------------------------------------------------------------------------------


def _not_tensors(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    keys = tuple(e.key for e, c in pairs if c is None)
    if not keys:
        return []
    text = f"{len(keys)} value(s) of the checkpoint are not tensors: {', '.join(keys[:6])}"
    text += "\nload_state_dict takes tensors only; the file may hold something else under them"
    return [Cause("not a tensor", keys, text)]


def _vocabulary(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    sizes: dict[tuple[int, int], Entry] = {}
    for e, c in one_dim(pairs, 0):
        table = isinstance(e.module, nn.Embedding) and e.name == "weight"
        if table and e.shape and c and not NOT_VOCAB.search(e.path.rpartition(".")[2]):
            sizes.setdefault((e.shape[0], c[0]), e)
    causes = []
    hf = callable(getattr(type(model), "resize_token_embeddings", None))
    for (rows, saved), embedding in sizes.items():
        group: list[Pair] = []  # a Hugging Face resize also grows a (1, V) bias
        for e, c in pairs:
            dims = differing(e.shape, c)
            if not dims or len(dims) != 1 or (dims[0] and not hf):
                continue
            if e.shape and c and e.shape[dims[0]] == rows and c[dims[0]] == saved:
                group.append((e, c))
        keys = tuple(e.key for e, _ in group)
        tied = [e.key for e, _ in group if e.tensor_id == embedding.tensor_id and e != embedding]
        text = f"the checkpoint has {saved} rows, the model {rows}: "
        if rows > saved:
            text += f"{rows - saved} token(s) added after the checkpoint was saved"
        else:
            text += f"the checkpoint was saved after {saved - rows} token(s) were added"
        text += f" ({embedding.key}"
        text += f"; {', '.join(tied)} tied to it)" if tied else ")"
        code = after = ""
        if hf:
            code = f"model.resize_token_embeddings({saved})"
            if rows > saved:
                after = f"model.resize_token_embeddings({rows})"
                text += f"\nload at the checkpoint's size, then grow back to {rows}: the new "
                text += "rows start as initialised"
        elif rows > saved:
            lines = [
                f"sd[{q(e.key)}] = torch.cat([sd[{q(e.key)}], "
                f"model.state_dict()[{q(e.key)}][{saved}:]])"
                for e, _ in group
            ]
            code = "\n".join(lines)
            text += f"\nthe checkpoint's {saved} rows go first; the model's last "
            text += f"{rows - saved} rows keep their values"
        else:
            code, note = _rebuild_vocabulary(group, embedding, saved)
            text += note
        causes.append(Cause("vocabulary", keys, text, code=code, after=after))
    return causes


def _rebuild_vocabulary(group: list[Pair], embedding: Entry, saved: int) -> tuple[str, str]:
    lines = []
    for e, _ in group:
        module = e.module
        if isinstance(module, nn.Embedding) and e.name == "weight":
            dim = module.embedding_dim
            lines.append(assign(e.path, f"nn.Embedding({saved}, {dim})"))
        elif isinstance(module, nn.Linear) and e.name == "weight":
            bias = "" if module.bias is not None else ", bias=False"
            lines.append(assign(e.path, f"nn.Linear({module.in_features}, {saved}{bias})"))
        elif isinstance(module, nn.Linear) and e.name == "bias":
            continue
        else:
            return "", f"\nbuild the model with {saved} tokens (the checkpoint's) where it has it"
        if e.tensor_id == embedding.tensor_id and e != embedding:
            lines.append(f"{module_ref(e.path)}.weight = {module_ref(embedding.path)}.weight")
    note = f"\nrebuild the embedding with the checkpoint's {saved} rows (or keep the model's "
    note += "size and take the checkpoint's first rows: sd[key][:rows])"
    return "\n".join(lines), note


def _classes(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    last = linears[-1] if linears else None
    heads: dict[str, list[Pair]] = defaultdict(list)
    for e, c in one_dim(pairs, 0):
        named = e.module is last or HEAD.fullmatch(e.path.rpartition(".")[2])
        if isinstance(e.module, nn.Linear) and e.name in ("weight", "bias") and named:
            heads[e.path].append((e, c))
    causes = []
    for path, group in heads.items():
        if not any(e.name == "weight" for e, _ in group):
            continue  # a bias alone: its weight differs in more than the classes
        module = group[0][0].module
        assert isinstance(module, nn.Linear)
        saved = group[0][1][0] if group[0][1] else 0
        keys = tuple(e.key for e, _ in group)
        text = f"{path or '(root)'} has {module.out_features} classes in the model, {saved} in the "
        text += "checkpoint: a head trained for another task\n"
        text += "drop its keys and load the rest with strict=False; the head stays as "
        text += "initialised, to be trained"
        attr = config_has(model, ("num_labels",), module.out_features)
        if attr:
            text += f"; or, for the checkpoint's head, build the model with config.{attr}={saved}"
        else:
            text += f"; or build {path or 'the model'} as nn.Linear({module.in_features}, {saved})"
        dropped = "{" + ", ".join(q(k) for k in keys) + "}"
        code = f"sd = {{k: v for k, v in sd.items() if k not in {dropped}}}"
        causes.append(Cause("classes", keys, text, code=code, strict_false=True))
    return causes


def _in_channels(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    """The model's first convolution, which reads the input: a later one whose input
    channels differ follows a layer that is wider or narrower."""
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    causes = []
    for e, c in one_dim(pairs, 1):
        module = e.module
        if module is not first:
            continue
        if not isinstance(module, nn.modules.conv._ConvNd) or e.name != "weight" or c is None:
            continue
        if module.groups != 1 or e.shape is None:
            continue
        have, saved = e.shape[1], c[1]
        kinds = f" ({CHANNELS.get(saved, '?')} vs {CHANNELS.get(have, '?')})"
        kinds = "" if "?" in kinds else kinds
        plural = "s" if have > 1 else ""
        text = f"{e.path or '(root)'} takes {have} input channel{plural} in the model, "
        text += f"{saved} in the checkpoint{kinds}"
        k = q(e.key)
        rest = ", -1" * (len(c) - 2)
        if have == 1:
            code = f"sd[{k}] = sd[{k}].sum(dim=1, keepdim=True)"
            text += f"\nsum the checkpoint's filters over its {saved} channels"
        elif saved == 1:
            code = f"sd[{k}] = sd[{k}].expand(-1, {have}{rest}) / {have}"
            text += f"\nspread the checkpoint's one channel over {have} (each 1/{have})"
        elif have > saved:
            mean = f"sd[{k}].mean(dim=1, keepdim=True).expand(-1, {have - saved}{rest})"
            code = f"sd[{k}] = torch.cat([sd[{k}], {mean}], dim=1)"
            text += f"\nkeep the {saved} channels and give the {have - saved} new one(s) "
            text += "their mean"
        else:
            code = f"sd[{k}] = sd[{k}][:, :{have}]"
            text += f"\nkeep the checkpoint's first {have} channels"
        attr = config_has(model, ("num_channels", "in_channels", "in_chans"), have)
        text += f"; or build the model with config.{attr}={saved}" if attr else ""
        text += "" if attr else f"; or build {e.path or 'the model'} with in_channels={saved}"
        causes.append(Cause("input channels", (e.key,), text, code=code))
    return causes


WIDTH_NAMES = {
    nn.Linear: ("out_features", "in_features"),
    nn.modules.conv._ConvNd: ("out_channels", "in_channels"),
    nn.Embedding: ("num_embeddings", "embedding_dim"),
    nn.LayerNorm: ("normalized_shape",),
    nn.modules.batchnorm._NormBase: ("num_features",),
    nn.GroupNorm: ("num_channels",),
}


def _what(e: Entry, dim: int) -> str:
    for kind, names in WIDTH_NAMES.items():
        if isinstance(e.module, kind):
            where = f"{e.path or '(root)'} ({type(e.module).__name__})"
            if e.name != "weight" or len(names) == 1:
                return f"{where}: {names[0]}"
            return f"{where}: {names[min(dim, len(names) - 1)]}"
    return f"{e.key}: dim {dim}"


def _width(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    groups: dict[str, list[tuple[Pair, list[int]]]] = defaultdict(list)
    for e, c in pairs:
        dims = differing(e.shape, c)
        if dims is None or e.shape is None or c is None:
            groups["rank"].append(((e, c), []))
            continue
        ratios = {f"{c[d] / e.shape[d]:.4g}" for d in dims}
        groups[",".join(sorted(ratios))].append(((e, c), dims))
    causes = []
    for ratio, members in groups.items():
        keys = tuple(e.key for (e, _), _ in members)
        if ratio == "rank":
            lines = [f"{e.key}: model {shape_text(e.shape)}, checkpoint {shape_text(c)}"]
            text = "different numbers of dimensions\n" + "\n".join(
                f"{e.key}: model {shape_text(e.shape)}, checkpoint {shape_text(c)}"
                for (e, c), _ in members
            )
            causes.append(Cause("shape", keys, text if len(members) > 1 else lines[0]))
            continue
        said: Counter[str] = Counter()
        for (e, c), dims in members:
            assert e.shape is not None and c is not None
            for d in dims:
                said[f"{_what(e, d)} {e.shape[d]} in the model, {c[d]} in the checkpoint"] += 1
        lines = [f"{line} ({n} tensors)" if n > 1 else line for line, n in said.items()]
        kind = "width" if len(members) > 1 else "shape"
        head = (
            f"{len(members)} tensors are x{ratio} in the checkpoint: " if len(members) > 1 else ""
        )
        text = head + ("a wider or narrower model\n" if head else "") + "\n".join(lines[:8])
        if len(lines) > 8:
            text += f"\n... and {len(lines) - 8} more"
        text += "\nbuild these layers with the checkpoint's sizes"
        causes.append(Cause(kind, keys, text))
    return causes
