"""Benchmark models, written from scratch (no torchvision): ResNet-50 and GPT-style stacks.

* `resnet50()`: torchvision's ResNet-50 (v1.5: the stride sits on the 3x3 conv of each
  Bottleneck), Bottleneck blocks [3, 4, 6, 3], BatchNorm, `ReLU(inplace=True)` reused three
  times per block as torchvision does, 1000 classes: 25,557,032 parameters.
* `gpt_stack()`: 12 pre-LayerNorm GPT blocks, d_model 768, 12 heads, MLP 4x with GELU,
  causal self-attention written with Linear + view/transpose + softmax. Input: hidden states
  of shape (batch, seq, d_model).
* `transformer_stack(n_layers)`: the same block at any depth and width, for benchmarks that
  need a given number of module calls (`CALLS_PER_BLOCK` calls per block, plus 2).

Every builder seeds the global RNG first and returns the model in eval mode.
Run `python bench/models.py` to print the parameter and call counts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RESNET50_PARAMS = 25_557_032  # torchvision.models.resnet50(): the count to match
CALLS_PER_BLOCK = 10  # module calls recorded per transformer Block (see `Block`)


# --------------------------------------------------------------------------------------------
# ResNet-50
# --------------------------------------------------------------------------------------------


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, plus the identity or a projection."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet with Bottleneck blocks, initialised as torchvision does."""

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers.extend(Bottleneck(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet50(num_classes: int = 1000, seed: int = 0) -> ResNet:
    """ResNet-50 as torchvision builds it (random weights), in eval mode."""
    torch.manual_seed(seed)
    return ResNet((3, 4, 6, 3), num_classes).eval()


# --------------------------------------------------------------------------------------------
# GPT blocks
# --------------------------------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one qkv Linear, masked softmax, output Linear."""

    def __init__(self, d_model: int, n_heads: int, max_seq: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        mask = torch.tril(torch.ones(max_seq, max_seq, dtype=torch.bool))
        self.mask: torch.Tensor
        self.register_buffer("mask", mask.view(1, 1, max_seq, max_seq), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        head = c // self.n_heads
        q, k, v = self.c_attn(x).split(c, dim=2)
        q = q.view(b, t, self.n_heads, head).transpose(1, 2)
        k = k.view(b, t, self.n_heads, head).transpose(1, 2)
        v = v.view(b, t, self.n_heads, head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head))
        att = att.masked_fill(~self.mask[:, :, :t, :t], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, d_model: int, ratio: int = 4) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, ratio * d_model)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(ratio * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    One forward records CALLS_PER_BLOCK = 10 module calls: the block, ln_1, attn, attn.c_attn,
    attn.c_proj, ln_2, mlp, mlp.c_fc, mlp.gelu, mlp.c_proj.
    """

    def __init__(self, d_model: int, n_heads: int, max_seq: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, max_seq)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TransformerStack(nn.Module):
    """`n_layers` Blocks and a final LayerNorm over hidden states (batch, seq, d_model)."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, max_seq: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.h = nn.ModuleList(Block(d_model, n_heads, max_seq) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


def transformer_stack(
    n_layers: int, d_model: int = 64, n_heads: int = 4, max_seq: int = 128, seed: int = 0
) -> TransformerStack:
    """A stack of `n_layers` Blocks in eval mode; one forward records 10*n_layers + 2 calls."""
    torch.manual_seed(seed)
    return TransformerStack(n_layers, d_model, n_heads, max_seq).eval()


def stack_for_calls(n_calls: int, d_model: int = 64, n_heads: int = 4) -> TransformerStack:
    """The shallowest stack whose forward records at least `n_calls` module calls."""
    n_layers = max(1, math.ceil((n_calls - 2) / CALLS_PER_BLOCK))
    return transformer_stack(n_layers, d_model, n_heads)


def gpt_stack(n_layers: int = 12, seed: int = 0) -> TransformerStack:
    """GPT-2 small's blocks: 12 layers, d_model 768, 12 heads, MLP 4x (85M parameters)."""
    return transformer_stack(n_layers, d_model=768, n_heads=12, max_seq=1024, seed=seed)


def hidden_states(model: TransformerStack, batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    """A seeded input for `model`: (batch, seq, d_model) standard normal."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq, model.d_model, generator=generator)


def images(batch: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    """A seeded image batch (batch, 3, size, size), standard normal."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _main() -> None:
    resnet = resnet50()
    n = count_parameters(resnet)
    check = "ok" if n == RESNET50_PARAMS else f"MISMATCH, torchvision has {RESNET50_PARAMS:,}"
    print(f"resnet50: {n:,} parameters ({check})")
    gpt = gpt_stack()
    print(f"gpt_stack: {count_parameters(gpt):,} parameters, {len(gpt.h)} blocks")
    deep = stack_for_calls(10_000)
    print(f"stack_for_calls(10_000): {len(deep.h)} blocks, {count_parameters(deep):,} parameters")


if __name__ == "__main__":
    _main()
