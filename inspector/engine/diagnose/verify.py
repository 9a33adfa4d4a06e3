"""A fix that replaces a layer is checked before it is offered.

The model's forward is walked again (dataflow.py: no user code runs) from the recorded inputs
to its output, with the layer replaced by the fixed one on meta tensors. Layers before it
give their recorded outputs; everything after it is worked out by torch's own shape rules. A
fix after which an op still fails is not offered: the explanation says what fails next
instead. A fix the walk cannot follow to the output is offered as it was, unchecked.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

from torch import nn

from inspector.engine.diagnose.context import Context, Explanation, short_file
from inspector.engine.diagnose.dataflow import Walk
from inspector.engine.diagnose.dataflow_values import (
    Failures,
    Obj,
    Tensor,
    from_info,
    layer_on_meta,
    retag,
)
from inspector.engine.diagnose.fixes import InputChange, Replacement
from inspector.engine.records import Struct
from inspector.engine.records import format_shape as fmt


def check_fixes(ctx: Context, ex: Explanation) -> None:
    """Check each fix of `ex` that can be checked on the walked pass. One after which the
    same op still fails is dropped (it does not fix this); one after which a later op fails
    is kept, with that second mismatch named; one that runs through says what it gives."""
    for replacement in list(ex.replacements):
        try:
            verdict = _walk_with(ctx, replacement)
        except Exception:  # a check that cannot run leaves the fix as it was
            continue
        if verdict is None:
            continue
        failed, output = verdict
        if failed is not None:
            step, message, layer = failed
            where = _where(step)
            if _same_failure(ctx, replacement, step, layer):
                if replacement.fix in ex.fixes:
                    ex.fixes.remove(replacement.fix)
                ex.details.append(
                    f"{replacement.fix} does not fix it: {where} still fails: {message}"
                )
                if ex.fixes and ex.fixes[0].startswith("or "):  # the alternative is the fix now
                    ex.fixes[0] = ex.fixes[0].removeprefix("or ").removeprefix(", ")
            elif not any(d.startswith("with this fix") for d in ex.details):
                ex.details.append(
                    f"with this fix the pass gets further, and then {where} fails: {message} "
                    "(a second mismatch)"
                )
        elif output is not None and not any(d.startswith("checked") for d in ex.details):
            change = (
                _layer_text(replacement.fix)
                if isinstance(replacement, Replacement)
                else f"{replacement.name} changed as the fix says,"
            )
            ex.details.append(
                f"checked on the recorded shapes: with {change} the forward runs to its "
                f"output {output}"
            )


def runs_through(ctx: Context, fix: Replacement | InputChange) -> bool:
    """Whether the pass, walked with `fix`, reaches the model's output with nothing failing
    (False also when the walk cannot tell)."""
    try:
        verdict = _walk_with(ctx, fix)
    except Exception:
        return False
    return verdict is not None and verdict[0] is None and verdict[1] is not None


def _where(step: Any) -> str:
    if step is None:
        return "a later layer"
    return f"`{step.expr}` at {short_file(step.file)}:{step.lineno}"


def _same_failure(ctx: Context, fix: Replacement | InputChange, step: Any, layer: Any) -> bool:
    """Whether the fixed pass fails where the real one did: the replaced layer itself, the
    failing layer, or the failing op's own line when a function failed."""
    if layer is not None:
        return layer is ctx.module or (isinstance(fix, Replacement) and layer is fix.module)
    line = ctx.line
    return (
        step is not None
        and line is not None
        and (step.file, step.lineno)
        == (
            line.file,
            line.lineno,
        )
    )


def _layer_text(fix: str) -> str:
    """`fc1 = nn.Linear(320, 50)` out of the fix's words."""
    start = fix.find("nn.")
    open_at = fix.find("(", start)
    if start < 0 or open_at < 0:
        return fix
    depth = 0
    for i in range(open_at, len(fix)):
        depth += {"(": 1, ")": -1}.get(fix[i], 0)
        if depth == 0:
            return fix[: i + 1]
    return fix


def _walk_with(
    ctx: Context, fix: Replacement | InputChange
) -> tuple[tuple[Any, str, Any] | None, str | None] | None:
    """(the first failure of the fixed pass as (step, message, layer), or None; the output's
    shape or None); None when the walk cannot follow the model from its inputs."""
    if not ctx.trace.calls:
        return None
    root_call = ctx.trace.calls[0]
    root = ctx.live_module(0)
    forward = getattr(type(root), "forward", None)
    if not isinstance(root, nn.Module) or not isinstance(forward, FunctionType):
        return None
    inputs = [from_info(v, None, (), None, None) for v in root_call.inputs]
    kwargs: dict[str, Any] = {}
    if isinstance(root_call.kwargs, Struct):
        kwargs = {k: from_info(v, None, (), None, None) for k, v in root_call.kwargs.fields}
    walk = Walk(ctx.trace, ctx.modules)
    if isinstance(fix, Replacement):
        built = fix.build()
        if built is None:
            return None
        walk.overrides = {id(fix.module): built}
    elif not _change_input(forward, inputs, kwargs, fix):
        return None
    else:
        walk.fresh = True  # every layer worked out again from the changed input
    walk.verifying = True
    found: list[Any] = []
    previous, Failures.active = Failures.active, found
    try:
        if isinstance(fix, Replacement) and fix.module is root:  # the layer is the model
            out = retag(layer_on_meta(walk.overrides[id(root)], inputs, kwargs), None, ())
        else:
            out = walk.walk_function(forward, (Obj(root), *inputs), kwargs, 1, root_call)
    finally:
        Failures.active = previous
    if found:
        return found[0], None
    if isinstance(out, Tensor) and out.known:
        return None, fmt(out.shape) if out.shape else "a scalar ()"
    return None


def _change_input(forward: FunctionType, inputs: list[Any], kwargs: dict[str, Any],
                  fix: InputChange) -> bool:  # fmt: skip
    """Apply `fix` to the walk's copy of the named input; False when it is not there."""
    code = forward.__code__
    names = code.co_varnames[1 : code.co_argcount]  # after self
    index = names.index(fix.name) if fix.name in names else len(inputs)
    if fix.name in kwargs:
        value = kwargs[fix.name]
    elif index < len(inputs):
        value = inputs[index]
    else:
        return False
    if not isinstance(value, Tensor) or not value.known:
        return False
    changed = fix.change(value.meta())
    made = Tensor(tuple(changed.shape), changed.dtype, name=fix.name)
    if fix.name in kwargs:
        kwargs[fix.name] = made
    else:
        inputs[index] = made
    return True
