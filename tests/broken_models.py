"""Broken models with the expected diagnosis: a corpus for the diagnosis tests.

Every case is a small, realistic model with one shape or usage bug of the kind people post
about on forums. Conventions:

- ``build()`` returns ``(model, args, kwargs)`` and seeds torch itself, so it is deterministic.
- The buggy source line carries the end-of-line marker comment ``BUG`` (exactly one per case).
  For an error raised in a module's forward it is the line in that forward that calls the
  failing op; when the failing module is a built-in (``nn.Linear``, ``nn.Conv2d``, ...) it is
  the call site in the parent's forward. When the culprit is only the data fed to a loss (the
  model itself is fine), the marker sits on the ``loss_fn=`` or ``target=`` line of the
  CORPUS entry instead.
- ``module`` is the path of the innermost module whose call fails, as in
  ``model.named_modules()``: ``""`` is the root model's own forward, ``"loss_fn"`` the loss
  applied as ``loss_fn(output, target)``.
- ``fix_numbers`` are numbers, computed from the real shapes, that a correct fix must mention.
- ``kind="warning"`` cases run without raising but are wrong (silent bugs).

Run ``python tests/broken_models.py`` to check that every case behaves as labelled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Broken:
    name: str
    build: Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]
    module: str
    fix_numbers: tuple[str, ...]
    kind: str = "error"
    op: str | None = None
    loss_fn: Callable[[], Any] | None = None
    target: Callable[[], torch.Tensor] | None = None
    note: str = ""
    words: tuple[str, ...] = ()  # phrases the diagnosis must contain (an input's name)
    absent: tuple[str, ...] = ()  # phrases of a misleading fix that must not appear


def _seeded(make: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """Wrap a target factory so that it is deterministic."""

    def factory() -> torch.Tensor:
        torch.manual_seed(1)
        return make()

    return factory


# ---------------------------------------------------------------------------------------------
# Linear in_features after conv / pool
# ---------------------------------------------------------------------------------------------


class CifarNetTwoPools(nn.Module):
    """in_features computed as if only one of the two pools had been applied."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 16 * 16, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))  # BUG
        return self.fc2(x)


def build_cifar_two_pools():
    torch.manual_seed(0)
    return CifarNetTwoPools(), (torch.randn(4, 3, 32, 32),), {}


class StridedConvNet(nn.Module):
    """in_features computed ignoring the stride of the conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, kernel_size=3, stride=2)
        self.fc = nn.Linear(8 * 26 * 26, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.view(x.size(0), -1)
        return self.fc(x)  # BUG


def build_strided_conv():
    torch.manual_seed(0)
    return StridedConvNet(), (torch.randn(4, 1, 28, 28),), {}


class LeNet5(nn.Module):
    """Classic LeNet written for 32x32 inputs, fed 28x28 MNIST (no padding in conv1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))  # BUG
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def build_lenet_mnist():
    torch.manual_seed(0)
    return LeNet5(), (torch.randn(4, 1, 28, 28),), {}


class ForgotFlattenNet(nn.Module):
    """The conv map goes into the Linear without flattening: Linear acts on the last dim."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        return self.fc(x)  # BUG


def build_forgot_flatten():
    torch.manual_seed(0)
    return ForgotFlattenNet(), (torch.randn(4, 3, 8, 8),), {}


class MLP(nn.Module):
    """Hidden width changed in one layer but not in the next."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(256, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))  # BUG
        return self.fc3(x)


def build_mlp_hidden():
    torch.manual_seed(0)
    return MLP(), (torch.randn(4, 784),), {}


# ---------------------------------------------------------------------------------------------
# view / reshape
# ---------------------------------------------------------------------------------------------


class TinyConvView(nn.Module):
    """view(-1, 3*3*3): a size copied from a tutorial that does not divide the tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 3 * 3, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.view(-1, 3 * 3 * 3)  # BUG
        return self.fc(x)


def build_view_27():
    torch.manual_seed(0)
    return TinyConvView(), (torch.randn(4, 3, 16, 16),), {}


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 20)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = x.view(-1, 32 * 7 * 7)  # BUG
        return self.fc(x)


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(20, 32 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.fc(z).view(-1, 32, 7, 7)
        x = F.relu(self.deconv1(x))
        return torch.sigmoid(self.deconv2(x))


class ConvAutoEncoder(nn.Module):
    """Encoder written for 28x28 MNIST, fed 32x32 images: the flatten size is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(self.encoder(x))


def build_encoder_view():
    torch.manual_seed(0)
    return ConvAutoEncoder(), (torch.randn(4, 1, 32, 32),), {}


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / (C // self.heads) ** 0.5
        out = att.softmax(dim=-1) @ v
        out = out.transpose(1, 2).view(B, T, C)  # BUG
        return self.proj(out)


class TinyTransformerBlock(nn.Module):
    """Merging the heads back with view() after transpose(): non-contiguous tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(32)
        self.attn = SelfAttention(32, 4)

    def forward(self, x):
        return x + self.attn(self.ln(x))


def build_view_after_transpose():
    torch.manual_seed(0)
    return TinyTransformerBlock(), (torch.randn(2, 6, 32),), {}


class ChannelsLastHead(nn.Module):
    """permute() to channels-last, then view() to flatten: non-contiguous tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.permute(0, 2, 3, 1)
        x = x.view(x.size(0), -1)  # BUG
        return self.fc(x)


def build_view_after_permute():
    torch.manual_seed(0)
    return ChannelsLastHead(), (torch.randn(4, 3, 8, 8),), {}


class HeadSplitAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # BUG
        k = k.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out(out.transpose(1, 2).reshape(B, T, -1))


class TextEncoder(nn.Module):
    """embed_dim=30 with num_heads=4: 30 // 4 = 7 and 4 * 7 = 28 != 30."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 30)
        self.attn = HeadSplitAttention(30, 4)

    def forward(self, tokens):
        return self.attn(self.emb(tokens))


def build_head_split_reshape():
    torch.manual_seed(0)
    return TextEncoder(), (torch.randint(0, 50, (2, 5)),), {}


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, z):
        return torch.tanh(self.fc2(F.relu(self.fc1(z))))


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.fc2 = nn.Linear(128, 1)

    def forward(self, x):
        x = x.view(-1, 28 * 28)  # BUG
        return torch.sigmoid(self.fc2(F.leaky_relu(self.fc1(x), 0.2)))


class GAN(nn.Module):
    """Generator ends with Linear(128, 10) but the Discriminator expects 28x28 images."""

    def __init__(self) -> None:
        super().__init__()
        self.G = Generator()
        self.D = Discriminator()

    def forward(self, z):
        fake = self.G(z)
        return self.D(fake)


def build_gan():
    torch.manual_seed(0)
    return GAN(), (torch.randn(4, 16),), {}


# ---------------------------------------------------------------------------------------------
# matmul / bmm
# ---------------------------------------------------------------------------------------------


class DotAttentionHead(nn.Module):
    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, head_dim)
        self.k = nn.Linear(dim, head_dim)
        self.v = nn.Linear(dim, head_dim)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = q @ k / q.size(-1) ** 0.5  # BUG
        return scores.softmax(dim=-1) @ v


class AttentionClassifier(nn.Module):
    """q @ k without k.transpose(-2, -1): (2, 5, 8) @ (2, 5, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = DotAttentionHead(12, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.head(x).mean(dim=1))


def build_attention_matmul():
    torch.manual_seed(0)
    return AttentionClassifier(), (torch.randn(2, 5, 12),), {}


class MemoryReader(nn.Module):
    """Query projected to 16 dims, memory encoded to 32 dims: bmm inner dims differ."""

    def __init__(self) -> None:
        super().__init__()
        self.query_proj = nn.Linear(20, 16)
        self.memory_enc = nn.Linear(12, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, query, memory):
        q = self.query_proj(query).unsqueeze(1)
        m = self.memory_enc(memory)
        scores = torch.bmm(q, m.transpose(1, 2))  # BUG
        read = torch.bmm(scores.softmax(dim=-1), m).squeeze(1)
        return self.out(read)


def build_memory_bmm():
    torch.manual_seed(0)
    return MemoryReader(), (torch.randn(2, 20), torch.randn(2, 10, 12)), {}


class MyLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.1)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        return x @ self.weight + self.bias  # BUG


class HandRolledMLP(nn.Module):
    """Weight stored as (out, in) like nn.Linear but used without .t()."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = MyLinear(16, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        return self.head(torch.relu(self.layer(x)))


def build_custom_linear():
    torch.manual_seed(0)
    return HandRolledMLP(), (torch.randn(4, 16),), {}


# ---------------------------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------------------------


class RGBNet(nn.Module):
    """Conv2d(3, ...) fed grayscale MNIST."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))  # BUG
        return self.fc(self.pool(x).flatten(1))


def build_grayscale_into_rgb():
    torch.manual_seed(0)
    return RGBNet(), (torch.randn(4, 1, 28, 28),), {}


class ConvChain(nn.Module):
    """conv2 expects 32 channels but conv1 produces 16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))  # BUG
        return self.fc(self.pool(x).flatten(1))


def build_conv_chain():
    torch.manual_seed(0)
    return ConvChain(), (torch.randn(4, 3, 16, 16),), {}


class ImageClassifier(nn.Module):
    """Images loaded as numpy HWC arrays and stacked to (N, H, W, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.conv(x))  # BUG
        return self.fc(x.mean(dim=(2, 3)))


def build_channels_last_images():
    torch.manual_seed(0)
    return ImageClassifier(), (torch.rand(4, 32, 32, 3),), {}


class SignalNet(nn.Module):
    """A batch of 1-D signals (N, L) fed to Conv1d without unsqueeze(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 8, kernel_size=5)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = F.relu(self.conv(x))  # BUG
        return self.fc(x.mean(dim=-1))


def build_conv1d_missing_unsqueeze():
    torch.manual_seed(0)
    return SignalNet(), (torch.randn(4, 100),), {}


class MnistCNN(nn.Module):
    """Flattened MNIST (N, 784) fed to Conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # BUG
        return self.fc(x.flatten(1))


def build_flattened_into_conv2d():
    torch.manual_seed(0)
    return MnistCNN(), (torch.randn(4, 784),), {}


class ThreeConvNet(nn.Module):
    """Third 5x5 conv applied to a 4x4 map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.conv3 = nn.Conv2d(16, 32, 5)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))  # BUG
        return self.fc(x.flatten(1))


def build_kernel_too_large():
    torch.manual_seed(0)
    return ThreeConvNet(), (torch.randn(4, 3, 20, 20),), {}


class DeepPoolNet(nn.Module):
    """Five conv+MaxPool2d(2) blocks on a 16x16 input: 16 -> 8 -> 4 -> 2 -> 1 -> 0."""

    def __init__(self) -> None:
        super().__init__()
        widths = [3, 8, 16, 32, 32, 64]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            for cin, cout in itertools.pairwise(widths)
        )
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)  # BUG
        return self.fc(x.flatten(1))


def build_pool_too_small():
    torch.manual_seed(0)
    return DeepPoolNet(), (torch.randn(2, 3, 16, 16),), {}


# ---------------------------------------------------------------------------------------------
# Normalisation layers
# ---------------------------------------------------------------------------------------------


class ConvBN(nn.Module):
    """BatchNorm2d(32) after a conv with 16 output channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(self.bn1(x))  # BUG
        return self.fc(x.mean(dim=(2, 3)))


def build_batchnorm_features():
    torch.manual_seed(0)
    return ConvBN(), (torch.randn(4, 3, 16, 16),), {}


class TabularNet(nn.Module):
    """BatchNorm1d(128) inside a Sequential, after Linear(20, 64)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(20, 64),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Linear(64, 32),
        )
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        x = self.features(x)  # BUG
        return self.head(x)


def build_batchnorm_sequential():
    torch.manual_seed(0)
    return TabularNet(), (torch.randn(4, 20),), {}


class PreNormBlock(nn.Module):
    """LayerNorm(64) in a block whose d_model is 32."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.ff = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))

    def forward(self, x):
        return x + self.ff(self.norm(x))  # BUG


def build_layernorm_dim():
    torch.manual_seed(0)
    return PreNormBlock(), (torch.randn(2, 10, 32),), {}


class ConvLN(nn.Module):
    """LayerNorm(C) applied to an NCHW map: normalized_shape must match the trailing dims."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        x = self.conv(x)
        return F.gelu(self.norm(x))  # BUG


def build_layernorm_on_image():
    torch.manual_seed(0)
    return ConvLN(), (torch.randn(4, 3, 8, 8),), {}


# ---------------------------------------------------------------------------------------------
# Elementwise broadcasting between branches, skip connections
# ---------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + x  # BUG
        return F.relu(out)


class TinyResNet(nn.Module):
    """Residual block that changes 16 -> 32 channels without a projection shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.block = ResidualBlock(16, 32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.block(F.relu(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


def build_residual_channels():
    torch.manual_seed(0)
    return TinyResNet(), (torch.randn(4, 3, 8, 8),), {}


class SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        w = x.mean(dim=(2, 3))
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return x * w  # BUG


class SENet(nn.Module):
    """Squeeze-excite gate of shape (N, C) multiplied into (N, C, H, W) without view(N, C, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.se = SEBlock(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.se(F.relu(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def build_se_gate():
    torch.manual_seed(0)
    return SENet(), (torch.randn(4, 3, 8, 8),), {}


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Depth-2 U-Net on 50x50: 50 -> 25 -> 12, upsampled 12 -> 24, skip is 25x25."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = double_conv(1, 8)
        self.enc2 = double_conv(8, 16)
        self.bottleneck = double_conv(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = double_conv(32, 16)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = double_conv(16, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottleneck(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))  # BUG
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


def build_unet_odd():
    torch.manual_seed(0)
    return UNet(), (torch.randn(2, 1, 50, 50),), {}


# ---------------------------------------------------------------------------------------------
# Attention / recurrent / embedding layers
# ---------------------------------------------------------------------------------------------


class MHAEmbedMismatch(nn.Module):
    """nn.MultiheadAttention(embed_dim=64) fed 32-dim tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim=64, num_heads=4)
        self.fc = nn.Linear(32, 2)

    def forward(self, x):
        out, _ = self.attn(x, x, x)  # BUG
        return self.fc(out.mean(dim=0))


def build_mha_embed_dim():
    torch.manual_seed(0)
    return MHAEmbedMismatch(), (torch.randn(6, 2, 32),), {}


class MHABatchFirstMask(nn.Module):
    """(batch, seq, embed) data into nn.MultiheadAttention without batch_first=True."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim=32, num_heads=4)
        self.fc = nn.Linear(32, 2)

    def forward(self, x, padding_mask):
        out, _ = self.attn(x, x, x, key_padding_mask=padding_mask)  # BUG
        return self.fc(out.mean(dim=1))


def build_mha_batch_first_mask():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 32)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True
    return MHABatchFirstMask(), (x, mask), {}


class LSTMTagger(nn.Module):
    """LSTM(input_size=10) fed 8 features per step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=10, hidden_size=20, batch_first=True)
        self.fc = nn.Linear(20, 5)

    def forward(self, x):
        out, _ = self.lstm(x)  # BUG
        return self.fc(out)


def build_lstm_input_size():
    torch.manual_seed(0)
    return LSTMTagger(), (torch.randn(4, 7, 8),), {}


class BiLSTMEncoder(nn.Module):
    """h0 sized num_layers, but a bidirectional LSTM needs num_layers * 2."""

    def __init__(self) -> None:
        super().__init__()
        self.num_layers = 2
        self.hidden_size = 16
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(32, 3)

    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        out, _ = self.lstm(x, (h0, c0))  # BUG
        return self.fc(out[:, -1, :])


def build_lstm_h0():
    torch.manual_seed(0)
    return BiLSTMEncoder(), (torch.randn(3, 7, 8),), {}


class BagOfWords(nn.Module):
    """vocab_size set to the largest token id (100) instead of largest id + 1."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, tokens):
        x = self.emb(tokens)  # BUG
        return self.fc(x.mean(dim=1))


def build_embedding_range():
    torch.manual_seed(0)
    tokens = torch.tensor([[5, 17, 42, 99], [3, 100, 7, 0]])
    return BagOfWords(), (tokens,), {}


class FloatTokenModel(nn.Module):
    """Token ids stored as float (e.g. from a float numpy array) fed to nn.Embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, tokens):
        x = self.emb(tokens)  # BUG
        return self.fc(x.mean(dim=1))


def build_embedding_float():
    torch.manual_seed(0)
    return FloatTokenModel(), (torch.randint(0, 50, (2, 6)).float(),), {}


# ---------------------------------------------------------------------------------------------
# dtype
# ---------------------------------------------------------------------------------------------


class Regressor(nn.Module):
    """float64 features (torch.from_numpy of a float64 array) into float32 weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(13, 32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))  # BUG
        return self.fc2(x)


def build_float64_input():
    torch.manual_seed(0)
    return Regressor(), (torch.randn(4, 13, dtype=torch.float64),), {}


# ---------------------------------------------------------------------------------------------
# Losses (the model itself runs; loss_fn(output, target) fails or misbehaves)
# ---------------------------------------------------------------------------------------------


class BinaryClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 1)

    def forward(self, x):
        x = F.relu(self.conv(x)).mean(dim=(2, 3))
        return torch.sigmoid(self.fc(x))


def build_binary_classifier():
    torch.manual_seed(0)
    return BinaryClassifier(), (torch.randn(4, 1, 28, 28),), {}


class BinaryLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(10, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def build_binary_logits():
    torch.manual_seed(0)
    return BinaryLogits(), (torch.randn(4, 10),), {}


class CharLM(nn.Module):
    """Returns (B, T, V) logits, as a language model does."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 16)
        self.rnn = nn.GRU(16, 16, batch_first=True)
        self.head = nn.Linear(16, 11)

    def forward(self, tokens):
        out, _ = self.rnn(self.emb(tokens))
        return self.head(out)


def build_char_lm():
    torch.manual_seed(0)
    return CharLM(), (torch.randint(0, 11, (2, 5)),), {}


class FlattenBatchFold(nn.Module):
    """view(-1, 16*4*4) on a (4, 16, 8, 8) map: runs, but the batch becomes 16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        x = x.view(-1, 16 * 4 * 4)  # BUG
        return self.fc(x)


def build_flatten_batch_fold():
    torch.manual_seed(0)
    return FlattenBatchFold(), (torch.randn(4, 3, 16, 16),), {}


class ConvAE(nn.Module):
    """Stride-2 autoencoder on 30x30 images: 30 -> 15 -> 8 -> 16 -> 32, not back to 30."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.dec1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec2 = nn.ConvTranspose2d(8, 1, 2, stride=2)

    def forward(self, x):
        x = F.relu(self.enc2(F.relu(self.enc1(x))))
        x = F.relu(self.dec1(x))
        return torch.sigmoid(self.dec2(x))  # BUG


def build_conv_ae():
    torch.manual_seed(0)
    return ConvAE(), (torch.rand(4, 1, 30, 30),), {}


class Scorer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def build_scorer():
    torch.manual_seed(0)
    return Scorer(), (torch.randn(4, 6),), {}


# ---------------------------------------------------------------------------------------------
# Silent bugs (run without an exception, but wrong)
# ---------------------------------------------------------------------------------------------


class SpatialIntoBatch(nn.Module):
    """(4, 8, 2, 2).view(-1, 8) -> (16, 8): spatial positions folded into the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = x.view(-1, 8)  # BUG
        return self.fc(x)


def build_spatial_into_batch():
    torch.manual_seed(0)
    return SpatialIntoBatch(), (torch.randn(4, 3, 8, 8),), {}


class SeqClassifier(nn.Module):
    """LSTM with batch_first=False fed (batch=4, seq=10, feature=8)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.lstm(x)  # BUG
        return self.fc(out[:, -1, :])


def build_lstm_batch_first():
    torch.manual_seed(0)
    return SeqClassifier(), (torch.randn(4, 10, 8),), {}


class FrameClassifier(nn.Module):
    """(B, T, F) reshaped to (B*T, F) for the Linear and never reshaped back."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 32)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        x = x.reshape(-1, x.size(-1))  # BUG
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def build_time_into_batch():
    torch.manual_seed(0)
    return FrameClassifier(), (torch.randn(2, 6, 12),), {}


class NoFlattenSilent(nn.Module):
    """Linear(8, 10) on a (4, 16, 8, 8) map: acts on the width axis, output (4, 16, 8, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.fc(x)  # BUG


def build_no_flatten_silent():
    torch.manual_seed(0)
    return NoFlattenSilent(), (torch.randn(4, 3, 8, 8),), {}


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------

CORPUS: list[Broken] = [
    # Linear in_features
    Broken(
        "linear_after_two_pools",
        build_cifar_two_pools,
        module="fc1",
        fix_numbers=("2048",),
        op="linear",
        note="fc1 sized for one pool (32*16*16) but two pools leave 32*8*8 = 2048 features",
    ),
    Broken(
        "linear_after_strided_conv",
        build_strided_conv,
        module="fc",
        fix_numbers=("1352",),
        op="linear",
        note="stride=2 ignored: the conv gives 13x13, not 26x26, so in_features is 8*13*13",
    ),
    Broken(
        "lenet_on_28px_mnist",
        build_lenet_mnist,
        module="fc1",
        fix_numbers=("256",),
        op="linear",
        note="LeNet written for 32x32 without padding, fed 28x28: the map is 4x4, not 5x5",
    ),
    Broken(
        "linear_forgot_flatten",
        build_forgot_flatten,
        module="fc",
        fix_numbers=("96",),
        op="linear",
        note="no flatten: Linear(96) applied to the last dim (4) of a (4, 6, 4, 4) map",
    ),
    Broken(
        "mlp_hidden_width_mismatch",
        build_mlp_hidden,
        module="fc2",
        fix_numbers=("128",),
        op="linear",
        note="fc1 outputs 128 but fc2 expects 256",
    ),
    # view / reshape
    Broken(
        "view_invalid_size_27",
        build_view_27,
        module="",
        fix_numbers=("768",),
        op="view",
        note="view(-1, 3*3*3) on (4, 3, 16, 16): 3072 is not divisible by 27; 768 per sample",
    ),
    Broken(
        "encoder_view_wrong_flatten",
        build_encoder_view,
        module="encoder",
        fix_numbers=("2048",),
        op="view",
        note="encoder assumes 28x28 input (32*7*7) but 32x32 gives (4, 32, 8, 8): 2048",
    ),
    Broken(
        "view_after_transpose",
        build_view_after_transpose,
        module="attn",
        fix_numbers=(),
        op="view",
        note="merging heads with view() after transpose(1, 2): use reshape or .contiguous()",
    ),
    Broken(
        "view_after_permute",
        build_view_after_permute,
        module="",
        fix_numbers=(),
        op="view",
        note="flattening with view() after permute(0, 2, 3, 1): use reshape or flatten",
    ),
    Broken(
        "head_split_indivisible",
        build_head_split_reshape,
        module="attn",
        fix_numbers=("30", "4"),
        op="reshape",
        note="embed_dim 30 is not divisible by num_heads 4 (head_dim 7, 4*7 = 28 != 30)",
    ),
    Broken(
        "gan_generator_into_discriminator",
        build_gan,
        module="D",
        fix_numbers=("784",),
        op="view",
        note="Generator ends Linear(128, 10) but Discriminator views to 28*28 = 784",
    ),
    # matmul / bmm
    Broken(
        "attention_missing_transpose",
        build_attention_matmul,
        module="head",
        fix_numbers=("8", "5"),
        op="matmul",
        note="q @ k with q, k (2, 5, 8): k must be transposed to (2, 8, 5)",
    ),
    Broken(
        "bmm_query_memory_dims",
        build_memory_bmm,
        module="",
        fix_numbers=("16", "32"),
        op="bmm",
        note="query projected to 16 but memory to 32: bmm (2, 1, 16) x (2, 32, 10)",
    ),
    Broken(
        "custom_linear_no_transpose",
        build_custom_linear,
        module="layer",
        fix_numbers=("16", "32"),
        op="matmul",
        note="weight stored (out=32, in=16) but used as x @ weight instead of x @ weight.t()",
    ),
    # convolutions
    Broken(
        "grayscale_into_rgb_conv",
        build_grayscale_into_rgb,
        module="conv1",
        fix_numbers=("1",),
        op="conv2d",
        note="Conv2d(3, 16) fed 1-channel images: in_channels=1 (or repeat to 3 channels)",
    ),
    Broken(
        "conv_chain_in_channels",
        build_conv_chain,
        module="conv2",
        fix_numbers=("16",),
        op="conv2d",
        note="conv1 outputs 16 channels but conv2 expects 32",
    ),
    Broken(
        "channels_last_images",
        build_channels_last_images,
        module="conv",
        fix_numbers=("3",),
        op="conv2d",
        note="images are (N, H, W, C) = (4, 32, 32, 3): permute(0, 3, 1, 2) to (4, 3, 32, 32)",
    ),
    Broken(
        "conv1d_missing_unsqueeze",
        build_conv1d_missing_unsqueeze,
        module="conv",
        fix_numbers=("1",),
        op="conv1d",
        note="(4, 100) signals read as unbatched (C=4, L=100): unsqueeze(1) to (4, 1, 100)",
    ),
    Broken(
        "flattened_image_into_conv2d",
        build_flattened_into_conv2d,
        module="conv1",
        fix_numbers=("28",),
        op="conv2d",
        note="flattened MNIST (4, 784) into Conv2d: view(-1, 1, 28, 28) first",
    ),
    Broken(
        "kernel_larger_than_map",
        build_kernel_too_large,
        module="conv3",
        fix_numbers=("4", "5"),
        op="conv2d",
        note="20x20 -> conv5 16 -> pool 8 -> conv5 4: a third 5x5 kernel does not fit a 4x4 map",
    ),
    Broken(
        "pooled_until_too_small",
        build_pool_too_small,
        module="blocks.4.2",
        fix_numbers=("32",),
        op="max_pool2d",
        note="five MaxPool2d(2) on 16x16: the fifth sees 1x1; needs input >= 32 or 4 blocks",
    ),
    # normalisation
    Broken(
        "batchnorm2d_num_features",
        build_batchnorm_features,
        module="bn1",
        fix_numbers=("16",),
        op="batch_norm",
        note="BatchNorm2d(32) after Conv2d(3, 16): num_features must be 16",
    ),
    Broken(
        "batchnorm1d_in_sequential",
        build_batchnorm_sequential,
        module="features.1",
        fix_numbers=("64",),
        op="batch_norm",
        note="BatchNorm1d(128) after Linear(20, 64) inside a Sequential",
    ),
    Broken(
        "layernorm_wrong_dim",
        build_layernorm_dim,
        module="norm",
        fix_numbers=("32",),
        op="layer_norm",
        note="LayerNorm(64) in a block with d_model 32",
    ),
    Broken(
        "layernorm_on_nchw",
        build_layernorm_on_image,
        module="norm",
        fix_numbers=("16", "8"),
        op="layer_norm",
        note="LayerNorm(16) on (4, 16, 8, 8) normalises the last dim (8): permute or [16, 8, 8]",
    ),
    # broadcasting / skip connections
    Broken(
        "residual_channel_mismatch",
        build_residual_channels,
        module="block",
        fix_numbers=("16", "32"),
        op="add",
        note="residual adds 32-channel output to 16-channel input: needs a 1x1 conv shortcut",
    ),
    Broken(
        "se_gate_missing_unsqueeze",
        build_se_gate,
        module="se",
        fix_numbers=("16",),
        op="mul",
        note="gate (4, 16) times (4, 16, 8, 8) broadcasts against W: view(4, 16, 1, 1)",
    ),
    Broken(
        "unet_cat_odd_size",
        build_unet_odd,
        module="",
        fix_numbers=("24", "25"),
        op="cat",
        note="50x50 input, depth 2: 25 pools to 12, upsamples to 24, skip is 25 (use 48 or 52)",
    ),
    # attention / recurrent / embedding
    Broken(
        "mha_embed_dim_mismatch",
        build_mha_embed_dim,
        module="attn",
        fix_numbers=("32",),
        op="multi_head_attention_forward",
        note="MultiheadAttention(embed_dim=64) fed (6, 2, 32) tokens",
    ),
    Broken(
        "mha_batch_first_key_padding_mask",
        build_mha_batch_first_mask,
        module="attn",
        fix_numbers=("2", "6"),
        op="multi_head_attention_forward",
        note="(2, 6, 32) batch-first data read as seq=2, batch=6; mask (2, 6) then mismatches",
    ),
    Broken(
        "lstm_input_size",
        build_lstm_input_size,
        module="lstm",
        fix_numbers=("8",),
        op=None,  # LSTM's own argument check raises before any op runs
        note="LSTM(input_size=10) fed 8 features per step",
    ),
    Broken(
        "bilstm_h0_shape",
        build_lstm_h0,
        module="lstm",
        fix_numbers=("4",),
        op=None,  # LSTM's own argument check raises before any op runs
        note="bidirectional 2-layer LSTM needs h0 of (2*2, 3, 16), got (2, 3, 16)",
    ),
    Broken(
        "embedding_index_out_of_range",
        build_embedding_range,
        module="emb",
        fix_numbers=("101",),
        op="embedding",
        note="token id 100 with Embedding(100, 8): num_embeddings must be 101",
    ),
    Broken(
        "embedding_float_indices",
        build_embedding_float,
        module="emb",
        fix_numbers=(),
        op="embedding",
        note="token ids are float32: convert with .long()",
    ),
    # dtype
    Broken(
        "float64_input_into_linear",
        build_float64_input,
        module="fc1",
        fix_numbers=(),
        op="linear",
        note="float64 input into float32 Linear: .float() the input (or model.double())",
    ),
    # losses
    Broken(
        "bce_image_batch_as_target",
        build_binary_classifier,
        module="loss_fn",
        fix_numbers=("4", "1"),
        op="binary_cross_entropy",
        loss_fn=nn.BCELoss,
        target=_seeded(lambda: torch.rand(4, 1, 28, 28)),  # BUG
        note="the image batch passed as target for a (4, 1) output; target must be (4, 1)",
    ),
    Broken(
        "bce_long_target",
        build_binary_classifier,
        module="loss_fn",
        fix_numbers=(),
        op="binary_cross_entropy",
        loss_fn=nn.BCELoss,
        target=_seeded(lambda: torch.randint(0, 2, (4, 1))),  # BUG
        note="BCELoss target is int64: convert with .float()",
    ),
    Broken(
        "bce_with_logits_target_shape",
        build_binary_logits,
        module="loss_fn",
        fix_numbers=("4", "1"),
        op="binary_cross_entropy_with_logits",
        loss_fn=nn.BCEWithLogitsLoss,
        target=_seeded(lambda: torch.randint(0, 2, (4,)).float()),  # BUG
        note="(4, 1) logits vs (4,) target: unsqueeze(1) the target or squeeze(1) the output",
    ),
    Broken(
        "cross_entropy_sequence_logits",
        build_char_lm,
        module="loss_fn",
        fix_numbers=("11",),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,  # BUG
        target=_seeded(lambda: torch.randint(0, 11, (2, 5))),
        note="(B, T, V) = (2, 5, 11) logits with (2, 5) targets: view(-1, 11) or permute(0, 2, 1)",
    ),
    Broken(
        "loss_batch_mismatch_after_view",
        build_flatten_batch_fold,
        module="loss_fn",
        fix_numbers=("1024",),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,
        target=_seeded(lambda: torch.randint(0, 10, (4,))),
        note="view(-1, 256) on (4, 16, 8, 8) makes a batch of 16; needs 1024 features per sample",
    ),
    Broken(
        "autoencoder_output_size_vs_target",
        build_conv_ae,
        module="loss_fn",
        fix_numbers=("32", "30"),
        op="mse_loss",
        loss_fn=nn.MSELoss,
        target=_seeded(lambda: torch.rand(4, 1, 30, 30)),
        note="stride-2 autoencoder maps 30x30 to 32x32, compared with the 30x30 input",
    ),
    # silent bugs
    Broken(
        "view_folds_spatial_into_batch",
        build_spatial_into_batch,
        module="",
        fix_numbers=("32",),
        kind="warning",
        note="(4, 8, 2, 2).view(-1, 8) -> (16, 8): output batch 16 for input batch 4",
    ),
    Broken(
        "mse_broadcast_target",
        build_scorer,
        module="loss_fn",
        fix_numbers=("4",),
        kind="warning",
        op="mse_loss",
        loss_fn=nn.MSELoss,
        target=_seeded(lambda: torch.randn(4)),  # BUG
        note="MSELoss on (4, 1) output vs (4,) target broadcasts to (4, 4)",
    ),
    Broken(
        "lstm_batch_first_false",
        build_lstm_batch_first,
        module="lstm",
        fix_numbers=("4", "10"),
        kind="warning",
        note="(4, 10, 8) read as seq=4, batch=10; out[:, -1] then picks a batch element",
    ),
    Broken(
        "reshape_time_into_batch",
        build_time_into_batch,
        module="",
        fix_numbers=("2", "6"),
        kind="warning",
        note="(2, 6, 12) reshaped to (12, 12) and never reshaped back: output (12, 5)",
    ),
    Broken(
        "linear_on_last_dim_silent",
        build_no_flatten_silent,
        module="fc",
        fix_numbers=("1024",),
        kind="warning",
        note="Linear(8, 10) on (4, 16, 8, 8) runs on the width axis: flatten to 1024 features",
    ),
]


# ---------------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------------


_MARKER = "# " + "BUG"  # spelled apart so that this line is not a marker itself


def _run_case(case: Broken) -> dict[str, Any]:
    """Run one case; report the exception, the innermost module and the failing torch ops."""
    import warnings

    from torch.overrides import TorchFunctionMode

    class OpRecorder(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.chain: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            try:
                return func(*args, **(kwargs or {}))
            except Exception:
                self.chain.append(getattr(func, "__name__", str(func)).strip("_"))
                raise

    model, args, kwargs = case.build()
    stack: list[str] = []
    mods: list[tuple[str, nn.Module]] = list(model.named_modules())
    loss = case.loss_fn() if case.loss_fn is not None else None
    if isinstance(loss, nn.Module):
        mods.append(("loss_fn", loss))

    def enter(name: str) -> None:
        stack.append(name)

    def leave() -> None:
        stack.pop()

    for name, mod in mods:
        mod.register_forward_pre_hook(lambda m, i, name=name: enter(name))
        mod.register_forward_hook(lambda m, i, o: leave())
    rec = OpRecorder()
    result: dict[str, Any] = {"exc": None, "module": None, "ops": [], "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with rec:
                out = model(*args, **kwargs)
                if loss is not None:
                    assert case.target is not None
                    out = loss(out, case.target())
            result["out_shape"] = tuple(out.shape)
        except (RuntimeError, ValueError, IndexError, AssertionError, TypeError) as exc:
            result["exc"] = exc
            result["module"] = stack[-1] if stack else None
            result["ops"] = rec.chain
    result["warnings"] = [str(w.message) for w in caught]
    return result


def _check() -> int:
    import inspect
    import sys

    failures = 0
    names = [c.name for c in CORPUS]
    if len(set(names)) != len(names):
        print("duplicate case names")
        failures += 1
    source_lines = inspect.getsource(sys.modules[__name__]).splitlines()
    n_markers = sum(line.rstrip().endswith(_MARKER) for line in source_lines)
    if n_markers != len(CORPUS):
        print(f"{n_markers} BUG markers for {len(CORPUS)} cases")
        failures += 1
    here = sys.modules[__name__]
    marker_owner: dict[type, str] = {}
    for case in CORPUS:
        problems = []
        res = _run_case(case)
        model = case.build()[0]
        classes = {type(m) for m in model.modules() if type(m).__module__ == here.__name__}
        markers = 0
        for cls in classes:
            count = inspect.getsource(cls).count(_MARKER)
            if count:
                markers += count
                if marker_owner.setdefault(cls, case.name) != case.name:
                    problems.append(f"class {cls.__name__} shared with {marker_owner[cls]}")
        if markers > 1 or (markers == 0 and case.loss_fn is None):
            problems.append(f"{markers} BUG markers in the model classes")
        if case.kind == "error":
            exc = res["exc"]
            if exc is None:
                problems.append(f"did not raise (output {res.get('out_shape')})")
            else:
                if res["module"] != case.module:
                    problems.append(f"failed in module {res['module']!r}, not {case.module!r}")
                if res["ops"] and case.op not in res["ops"]:
                    problems.append(f"op chain {res['ops']} lacks {case.op!r}")
        elif case.kind == "warning":
            if res["exc"] is not None:
                problems.append(f"raised {type(res['exc']).__name__}: {res['exc']}")
        else:
            problems.append(f"unknown kind {case.kind!r}")
        status = "FAIL" if problems else "ok"
        failures += bool(problems)
        if res["exc"] is not None:
            first = str(res["exc"]).strip().splitlines()[0] if str(res["exc"]).strip() else ""
            detail = f"{type(res['exc']).__name__}: {first}  ops={res['ops']}"
        else:
            detail = f"runs, output {res.get('out_shape')}"
            if res["warnings"]:
                detail += f"  warnings={res['warnings']}"
        print(f"{status:4} {case.name:36} {detail}")
        for p in problems:
            print(f"       - {p}")
    print(f"{len(CORPUS)} cases, {failures} failures")
    return failures


if __name__ == "__main__":
    raise SystemExit(1 if _check() else 0)


# -- models whose numbers go wrong (NaN forward or backward), shared by the numeric tests ----


class MakesNaN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(4, 4)
        self.feat = nn.Identity()
        self.post = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        return self.post(self.feat(torch.log(h)))  # log of negatives: NaN from here on


class RowNorm(nn.Module):
    """The length of each row: sqrt has an infinite derivative at 0, so a zero row -> NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((x * x).sum(-1, keepdim=True)) * x


class NaNGradInFeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(4, 8)
        self.feat = RowNorm()
        self.post = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.feat(self.pre(x)))
