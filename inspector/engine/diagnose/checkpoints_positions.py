"""A position table saved for another size: a grid of patches for another image or patch
size (interpolated), or a sequence table for another length (cut, or extended with the
model's own rows)."""

from __future__ import annotations

import inspect
import math

from torch import nn

from inspector.engine.diagnose.checkpoints_common import (
    Entry,
    Pair,
    config_has,
    differing,
    hf_config,
    positional,
)
from inspector.engine.diagnose.checkpoints_report import Cause, Shape, q


def _grid(n: int) -> tuple[int, int] | None:
    """(extra tokens, side) when n is a few class/distillation tokens plus a square grid."""
    for extra in (1, 0, 2):
        side = math.isqrt(max(n - extra, 0))
        if side >= 2 and side * side == n - extra:
            return extra, side
    return None


def position_rule(model: nn.Module, pairs: list[Pair]) -> list[Cause]:
    causes = []
    config = hf_config(model)
    for e, c in pairs:
        dims = differing(e.shape, c)
        if not positional(e.key) or c is None or e.shape is None or dims is None:
            continue
        if len(dims) != 1 or (dims[0] == len(c) - 1 and len(c) > 1 and "ids" not in e.name):
            continue
        t, rows, saved = dims[0], e.shape[dims[0]], c[dims[0]]
        image = config is not None and "patch_size" in vars(config)
        grids = _grid(rows), _grid(saved)
        leading = (len(c) == 3 and t == 1 and c[0] == 1) or (len(c) == 2 and t == 0)
        square = leading and grids[0] and grids[1] and grids[0][0] == grids[1][0]
        if square and grids[0] and grids[1] and (len(c) == 3 or image):
            causes.append(_grid_cause(model, e, c, t, grids[0][0], grids[0][1], grids[1][1]))
            continue
        text = f"{e.key}: the checkpoint's table has {saved} positions, the model's {rows}"
        if saved > rows:
            code = f"sd[{q(e.key)}] = sd[{q(e.key)}].narrow({t}, 0, {rows})"
            text += f"\nkeep the checkpoint's first {rows} positions"
        else:
            model_part = f"model.state_dict()[{q(e.key)}].narrow({t}, {saved}, {rows - saved})"
            code = f"sd[{q(e.key)}] = torch.cat([sd[{q(e.key)}], {model_part}], dim={t})"
            text += f"\nthe checkpoint's {saved} go first, positions {saved}.. keep the model's"
            text += " values (to be trained)"
        names = ("max_position_embeddings", "n_positions", "max_seq_len", "max_len")
        attr = config_has(model, names, rows)
        if attr:
            text += f"; or build the model with config.{attr}={saved}"
        causes.append(Cause("position table", (e.key,), text, code=code))
    return causes


def _grid_cause(
    model: nn.Module, e: Entry, c: Shape, t: int, extra: int, side: int, saved: int
) -> Cause:
    dim = c[-1]
    lead = "1, " if len(c) == 3 else ""
    sl = ":, " if len(c) == 3 else ""
    k = q(e.key)
    code = "\n".join(
        [
            f"pos = sd[{k}]",
            f"grid = pos[{sl}{extra}:].reshape(1, {saved}, {saved}, {dim}).permute(0, 3, 1, 2)",
            f"grid = torch.nn.functional.interpolate(grid.float(), size=({side}, {side}), "
            'mode="bicubic")',
            f"grid = grid.to(pos.dtype).permute(0, 2, 3, 1).reshape({lead}{side * side}, {dim})",
            f"sd[{k}] = torch.cat([pos[{sl}:{extra}], grid], dim={t})",
        ]
    )
    tokens = f"{extra} class token{'s' if extra > 1 else ''} and " if extra else ""
    text = f"{e.key}: the checkpoint's table holds {tokens}a {saved}x{saved} grid, the model's "
    text += f"a {side}x{side} grid: saved for another image or patch size"
    config = hf_config(model)
    patch = vars(config).get("patch_size") if config is not None else None
    if isinstance(patch, int):
        text += f" (images of {saved * patch} vs {side * patch} at patch size {patch})"
    text += f"\ninterpolate the grid from {saved}x{saved} to {side}x{side} (bicubic)"
    if extra:
        text += f", keeping the class token{'s' if extra > 1 else ''}"
    forward = getattr(type(model), "forward", None)
    if isinstance(patch, int) and forward is not None:
        try:
            takes = "interpolate_pos_encoding" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            text += f"; or build the model with config.image_size={saved * patch} and call it "
            text += "with interpolate_pos_encoding=True"
    return Cause("position table", (e.key,), text, code=code)
