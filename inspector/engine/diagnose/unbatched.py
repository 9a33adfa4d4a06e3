"""An image given without its batch dim: (C, H, W) where the model takes (N, C, H, W).

torch's convolutions and pools accept one unbatched image, so the first layers run, and the
failure comes later: `x.view(x.size(0), -1)` takes the C channels for the batch, and the
head gets (C, H*W) features where it was built for C*H*W. A fix of the head would be wrong;
the input is. The evidence: a 2-D conv or pool of the record got a 3-D input that is the
model's own input, and the failing op's first operand has a dim 0 equal to the channel
count of a 3-D map in the pass.
"""

from __future__ import annotations

from torch import nn

from inspector.engine.diagnose.context import Context, Explanation, is_model_input
from inspector.engine.diagnose.inputs import named_inputs
from inspector.engine.records import first_tensor
from inspector.engine.records import format_shape as fmt

_IMAGE_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d)


def explain_unbatched_image(ctx: Context) -> Explanation | None:
    tensors = ctx.op_tensors() or [t for t in [ctx.tensor_arg(0)] if t is not None]
    if not tensors or tensors[0].dim() < 1:
        return None
    first = None
    channels = set()
    for call in ctx.trace.calls:
        module = ctx.live_module(call.seq)
        info = first_tensor(call.inputs)
        out = first_tensor(call.outputs)
        if not isinstance(module, _IMAGE_LAYERS) or info is None:
            continue
        unbatched = isinstance(module, nn.Conv2d) and info.ndim == 3
        if first is None and unbatched and info.shape[0] == module.in_channels:
            first = (call, info) if is_model_input(ctx.trace, info, call) else None
        if out is not None and out.ndim == 3:
            channels.add(out.shape[0])
    if first is None or tensors[0].shape[0] not in channels:
        return None
    call, info = first
    name = next((n for n, i in named_inputs(ctx) if i.shape == info.shape), "the input")
    batched = (1, *info.shape)
    ex = Explanation(
        summary=f"{name} {fmt(info.shape)} has no batch dim: the model takes (N, C, H, W)",
        details=[
            f"{call.name} reads {fmt(info.shape)} as one unbatched image, so the layers after "
            f"it see a map without a batch, and a later x.size(0) is its "
            f"{tensors[0].shape[0]} channels"
        ],
        code="input-unbatched",
    )
    ex.change_input(
        f"{name}.unsqueeze(0) gives {fmt(batched)} (or stack the images into a batch)",
        name,
        lambda t: t.unsqueeze(0),
    )
    return ex
