"""A zoo of small, healthy but awkward models for the engine's tests.

Every model here is *correct*: shapes are the ones people really use, nothing broadcasts by
accident, no batch dimension is folded away by a view, and every output is finite. A diagnosis
engine must stay quiet on all of them. What makes them awkward is how they look through
``nn.Module`` forward hooks: modules reused within one forward, outputs that are containers,
non-tensor arguments, keyword-only arguments, in-place activations, lazily initialised
parameters, complex and low-precision dtypes, modules that are never called as modules, and so on.

Conventions:

* ``Case.build()`` returns ``(model, args, kwargs)``; the model is to be called as
  ``model(*args, **kwargs)``. It reseeds the global RNG (``torch.manual_seed``) first, so two
  calls give identical models and inputs, and a forward run straight after ``build()`` is
  reproducible too (dropout and ``LazyLinear`` initialisation draw from the global RNG).
* ``build()`` leaves the model in the mode it is meant to be traced in: ``eval()`` unless the
  note says "train mode".
* ``loss_fn()`` / ``target()`` are factories; ``loss_fn()(output, target())`` is a scalar loss
  (for ``returns_loss`` the loss is computed inside the model instead).

Run ``python tests/models.py`` to build and run every case and check reproducibility.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.checkpoint import checkpoint

Built = tuple[nn.Module, tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One zoo entry: a deterministic model factory plus an optional loss."""

    name: str
    build: Callable[[], Built]
    loss_fn: Callable[[], nn.Module | Callable[..., torch.Tensor]] | None = None
    target: Callable[[], torch.Tensor] | None = None
    note: str = ""


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Output containers
# --------------------------------------------------------------------------------------------


class Detection(NamedTuple):
    """Namedtuple output of ``NamedTupleHead``."""

    boxes: torch.Tensor
    scores: torch.Tensor


@dataclass
class EncoderOutput:
    """Dataclass output in the style of Hugging Face ``ModelOutput``."""

    last_hidden_state: torch.Tensor
    pooled: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class ReusedModules(nn.Module):
    """Applies the same Linear and the same ReLU instance twice in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.shared = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x))
        h = self.act(self.shared(h))
        h = self.act(self.shared(h))
        return self.out(h)


class TiedLM(nn.Module):
    """Tiny language model whose output projection shares the embedding weight."""

    def __init__(self, vocab: int = 24, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(self.embed(ids)))


class BranchyNet(nn.Module):
    """Routes through a ModuleDict of heads and a ModuleList of layers."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "reg": nn.Linear(8, 1)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            x = torch.relu(layer(x)) + x
        return self.heads["cls"](x), self.heads["reg"](x)


class DictOutput(nn.Module):
    """Returns a dict of tensors, including a 0-dim auxiliary loss."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.GELU())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)
        return {"logits": self.head(feats), "features": feats, "aux_loss": feats.pow(2).mean()}


class NamedTupleHead(nn.Module):
    """Detection-style head returning a namedtuple of boxes and scores."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(8, 16)
        self.box = nn.Linear(16, 4)
        self.score = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> Detection:
        h = torch.relu(self.trunk(x))
        return Detection(boxes=self.box(h), scores=torch.sigmoid(self.score(h)).squeeze(-1))


class DataclassEncoder(nn.Module):
    """Two-layer encoder returning a dataclass with per-layer hidden states."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        hidden = [x]
        for layer in self.layers:
            x = self.norm(x + torch.tanh(layer(x)))
            hidden.append(x)
        return EncoderOutput(last_hidden_state=x, pooled=x.mean(dim=1), hidden_states=tuple(hidden))


class LSTMClassifier(nn.Module):
    """Two-layer batch_first LSTM returning ``(logits, (h, c))``."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]), (h, c)


class GRUWithState(nn.Module):
    """GRU called with an explicit initial hidden state passed in by the caller."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(x, h0)
        return self.head(out), h


class PackedLSTM(nn.Module):
    """LSTM over a PackedSequence of variable-length sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        last = padded[torch.arange(x.shape[0]), lengths - 1]
        return self.head(last)


class KeywordOnly(nn.Module):
    """Forward with keyword-only arguments: a bool mask and a float temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(
        self, x: torch.Tensor, *, mask: torch.Tensor, temperature: float = 1.0
    ) -> torch.Tensor:
        h = self.proj(x).masked_fill(~mask.unsqueeze(-1), 0.0)
        pooled = h.sum(dim=1) / mask.sum(dim=1, keepdim=True)
        return self.head(pooled) / temperature


class BNDropoutMLP(nn.Module):
    """MLP with BatchNorm1d and Dropout, meant to be traced in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(8, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(16, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenClassifier(nn.Module):
    """Integer token ids into an Embedding with padding_idx, masked mean pooling."""

    def __init__(self, vocab: int = 30, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.head = nn.Linear(dim, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = (ids != 0).unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(ids) * keep).sum(dim=1) / keep.sum(dim=1)
        return self.head(pooled)


class EmbeddingBagModel(nn.Module):
    """EmbeddingBag with flat ids plus offsets: dim 0 of the input is not the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(30, 16, mode="mean")
        self.head = nn.Linear(16, 3)

    def forward(self, flat_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(flat_ids, offsets))


class MaskedAttentionPool(nn.Module):
    """Attention pooling over a sequence with a bool padding mask (True = keep)."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return self.head(torch.einsum("bt,btc->bc", weights, x))


class EmptyBatchMLP(nn.Module):
    """Plain Linear-ReLU-Linear, fed a batch of size 0."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class BasicBlock(nn.Module):
    """ResNet basic block; one ReLU(inplace=True) instance used twice, in-place residual add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    """Stem conv, two basic blocks, global average pool, linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
        )
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class TinyTransformerEncoder(nn.Module):
    """Embedding plus a two-layer nn.TransformerEncoder with a key padding mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 16, padding_idx=0)
        layer = nn.TransformerEncoderLayer(
            d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(ids), src_key_padding_mask=pad_mask)
        keep = (~pad_mask).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(dim=1) / keep.sum(dim=1))


class CrossAttention(nn.Module):
    """nn.MultiheadAttention with separate query and key/value, returning per-head weights."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, num_heads=2, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(
        self, query: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, weights = self.attn(
            query, memory, memory, need_weights=True, average_attn_weights=False
        )
        return self.norm(query + out), weights


class FlaggedForward(nn.Module):
    """Takes an int and a str argument and returns a tuple with a None in it."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.head = nn.Linear(8, 2)

    def forward(
        self, x: torch.Tensor, n_layers: int, pool: str = "mean"
    ) -> tuple[torch.Tensor, None, int]:
        for layer in self.layers[:n_layers]:
            x = torch.relu(layer(x))
        pooled = x.mean(dim=1) if pool == "mean" else x.amax(dim=1)
        return self.head(pooled), None, n_layers


class LazyMLP(nn.Module):
    """First layer is a LazyLinear whose in_features is inferred at the first forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.LazyLinear(16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CausalSelfAttention(nn.Module):
    """GPT-style attention: fused qkv, head split/merge by view/transpose, causal mask."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y)


class GPTBlock(nn.Module):
    """Pre-norm transformer block: attention and MLP, each with a residual."""

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_head)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token and position embeddings (positions from torch.arange), one block, LM head."""

    def __init__(self, vocab: int = 24, dim: int = 16, ctx: int = 8) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(ctx, dim)
        self.block = GPTBlock(dim, n_head=2)
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        return self.lm_head(self.ln_f(self.block(x)))


class GRUCellLoop(nn.Module):
    """Hand-rolled recurrence: a zero state made in forward, one GRUCell called per step."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(4, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.cell.hidden_size, dtype=x.dtype, device=x.device)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return self.head(torch.stack(outs, dim=1))


class ConvUpsampler(nn.Module):
    """Conv1d, channel LayerNorm via transposes, Upsample, then PixelShuffle on a 2-D view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 16, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(16)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.shuffle = nn.PixelShuffle(2)
        self.out = nn.Conv2d(4, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = self.norm(h.transpose(1, 2)).transpose(1, 2)
        h = self.up(h)
        b, c, n = h.shape
        h = self.shuffle(h.view(b, c, 4, n // 4))
        return self.out(h)


class RFFT(nn.Module):
    """Real FFT along the last dimension; its output is complex."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(x, dim=-1)


class Magnitude(nn.Module):
    """Absolute value of a complex tensor."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.abs()


class SpectralClassifier(nn.Module):
    """Classifies a signal from its FFT magnitude; a submodule returns a complex tensor."""

    def __init__(self, length: int = 32) -> None:
        super().__init__()
        self.fft = RFFT()
        self.mag = Magnitude()
        self.head = nn.Linear(length // 2 + 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.log1p(self.mag(self.fft(x))))


class SmallMLP(nn.Module):
    """Linear-GELU-LayerNorm-Linear, used for the dtype cases."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.act(self.fc1(x))))


class MixedPrecision(nn.Module):
    """float32 trunk with a bfloat16 head; the cast happens inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4).to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.trunk(x))
        return self.head(h.to(torch.bfloat16)).float()


class SmallCNN(nn.Module):
    """Conv-ReLU-MaxPool-Flatten-Linear image classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
        )
        self.classifier = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ClassifierWithLoss(nn.Module):
    """Hugging Face style: given labels, returns ``(loss, logits)`` computed inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.loss = nn.CrossEntropyLoss()

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        logits = self.net(x)
        loss = self.loss(logits, labels) if labels is not None else None
        return loss, logits


class DirectForwardCall(nn.Module):
    """Calls its encoder via ``.forward()`` directly, bypassing ``__call__`` and its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward(x))


class AliasedSubmodule(nn.Module):
    """The same Linear is registered under two attribute names and called via both."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.proj_again = self.proj
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.proj(x))
        return self.head(torch.tanh(self.proj_again(h)))


class RootParameters(nn.Module):
    """Root-owned Parameters and a buffer used functionally (F.linear), plus one child."""

    input_scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 8) / math.sqrt(8))
        self.bias = nn.Parameter(torch.zeros(16))
        self.gamma = nn.Parameter(torch.full((16,), 0.1))
        self.register_buffer("input_scale", torch.full((8,), 0.5))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x * self.input_scale, self.weight, self.bias)
        return self.head(self.gamma * F.silu(h))


class WeightNormMLP(nn.Module):
    """Linear layers reparametrised with weight_norm: reading ``.weight`` runs a module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = parametrizations.weight_norm(nn.Linear(8, 16))
        self.fc2 = parametrizations.weight_norm(nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class CheckpointedMLP(nn.Module):
    """Middle block run through torch.utils.checkpoint (non-reentrant)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16))
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        h = h + checkpoint(self.block, h, use_reentrant=False)
        return self.out(h)


class TeacherStudent(nn.Module):
    """BYOL-style: the teacher branch runs under torch.no_grad and its output is detached."""

    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
        self.teacher = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
        self.teacher.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            target = self.teacher(x)
        return self.student(x), target.detach()


class FeaturePyramid(nn.Module):
    """Returns a list of feature maps at three resolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [
                nn.Conv2d(3, 4, 3, padding=1),
                nn.Conv2d(4, 8, 3, stride=2, padding=1),
                nn.Conv2d(8, 8, 3, stride=2, padding=1),
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = F.relu(stage(x))
            feats.append(x)
        return feats


class DictInput(nn.Module):
    """Takes a single dict batch with int64 ids and an int64 (0/1) attention mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.embed(batch["input_ids"])
        m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(dim=1) / m.sum(dim=1))


class IdentityHead(nn.Module):
    """Feature extractor whose classifier was swapped for nn.Identity."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _mlp() -> Built:
    _seed()
    model = nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)
    )
    return model.eval(), (torch.randn(4, 8),), {}


def _reused_modules() -> Built:
    _seed()
    return ReusedModules().eval(), (torch.randn(4, 8),), {}


def _tied_embedding() -> Built:
    _seed()
    return TiedLM().eval(), (torch.randint(0, 24, (2, 6)),), {}


def _module_dict_list() -> Built:
    _seed()
    return BranchyNet().eval(), (torch.randn(4, 8),), {}


def _dict_output() -> Built:
    _seed()
    return DictOutput().eval(), (torch.randn(4, 8),), {}


def _namedtuple_output() -> Built:
    _seed()
    return NamedTupleHead().eval(), (torch.randn(3, 8),), {}


def _dataclass_output() -> Built:
    _seed()
    return DataclassEncoder().eval(), (torch.randn(2, 5, 8),), {}


def _lstm() -> Built:
    _seed()
    return LSTMClassifier().eval(), (torch.randn(3, 5, 4),), {}


def _gru_h0() -> Built:
    _seed()
    return GRUWithState().eval(), (torch.randn(2, 5, 4), torch.randn(1, 2, 8)), {}


def _lstm_packed() -> Built:
    _seed()
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 3, 4])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0.0
    return PackedLSTM().eval(), (x, lengths), {}


def _keyword_only() -> Built:
    _seed()
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    return KeywordOnly().eval(), (torch.randn(3, 5, 8),), {"mask": mask, "temperature": 0.5}


def _batchnorm_dropout_train() -> Built:
    _seed()
    return BNDropoutMLP().train(), (torch.randn(4, 8),), {}


def _token_ids() -> Built:
    _seed()
    ids = torch.tensor([[5, 9, 2, 17, 0, 0], [3, 3, 28, 1, 4, 11]])
    return TokenClassifier().eval(), (ids,), {}


def _embedding_bag() -> Built:
    _seed()
    flat_ids = torch.tensor([4, 7, 1, 9, 9, 2, 15, 3])
    offsets = torch.tensor([0, 3, 5])
    return EmbeddingBagModel().eval(), (flat_ids, offsets), {}


def _bool_mask() -> Built:
    _seed()
    mask = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    return MaskedAttentionPool().eval(), (torch.randn(2, 5, 8), mask), {}


def _empty_batch() -> Built:
    _seed()
    return EmptyBatchMLP().eval(), (torch.randn(0, 8),), {}


def _nested_sequential() -> Built:
    _seed()
    model = nn.Sequential(
        nn.Sequential(
            nn.Sequential(nn.Linear(8, 16), nn.ReLU()),
            nn.Sequential(nn.Linear(16, 16), nn.Tanh()),
        ),
        nn.Linear(16, 4),
    )
    return model.eval(), (torch.randn(4, 8),), {}


def _resnet_blocks() -> Built:
    _seed()
    return TinyResNet().eval(), (torch.randn(2, 3, 8, 8),), {}


def _transformer_encoder() -> Built:
    _seed()
    ids = torch.tensor([[4, 8, 15, 16, 0, 0], [2, 3, 5, 7, 11, 13]])
    return TinyTransformerEncoder().eval(), (ids, ids == 0), {}


def _multihead_attention() -> Built:
    _seed()
    return CrossAttention().eval(), (torch.randn(2, 4, 16), torch.randn(2, 6, 16)), {}


def _non_tensor_args() -> Built:
    _seed()
    return FlaggedForward().eval(), (torch.randn(2, 5, 8), 2, "max"), {}


def _lazy_linear() -> Built:
    _seed()
    return LazyMLP().eval(), (torch.randn(2, 12),), {}


def _tiny_gpt() -> Built:
    _seed()
    return TinyGPT().eval(), (torch.randint(0, 24, (2, 8)),), {}


def _gru_cell_loop() -> Built:
    _seed()
    return GRUCellLoop().eval(), (torch.randn(2, 4, 4),), {}


def _conv_upsample() -> Built:
    _seed()
    return ConvUpsampler().eval(), (torch.randn(2, 4, 16),), {}


def _complex_fft() -> Built:
    _seed()
    return SpectralClassifier().eval(), (torch.randn(3, 32),), {}


def _float64() -> Built:
    _seed()
    return SmallMLP().double().eval(), (torch.randn(4, 8, dtype=torch.float64),), {}


def _bfloat16() -> Built:
    _seed()
    return SmallMLP().to(torch.bfloat16).eval(), (torch.randn(4, 8).to(torch.bfloat16),), {}


def _float16() -> Built:
    _seed()
    return SmallMLP().half().eval(), (torch.randn(4, 8).half(),), {}


def _mixed_precision() -> Built:
    _seed()
    return MixedPrecision().eval(), (torch.randn(4, 8),), {}


def _cnn_cross_entropy() -> Built:
    _seed()
    return SmallCNN().train(), (torch.randn(4, 1, 8, 8),), {}


def _cnn_targets() -> torch.Tensor:
    return torch.tensor([0, 2, 1, 2])


def _regression_mse() -> Built:
    _seed()
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    return model.train(), (torch.randn(4, 6),), {}


def _regression_targets() -> torch.Tensor:
    return torch.tensor([[0.5], [-1.0], [0.25], [2.0]])


def _returns_loss() -> Built:
    _seed()
    return (
        ClassifierWithLoss().train(),
        (torch.randn(4, 8),),
        {"labels": torch.tensor([2, 0, 1, 1])},
    )


def _direct_forward_call() -> Built:
    _seed()
    return DirectForwardCall().eval(), (torch.randn(4, 8),), {}


def _aliased_submodule() -> Built:
    _seed()
    return AliasedSubmodule().eval(), (torch.randn(4, 8),), {}


def _root_parameters() -> Built:
    _seed()
    return RootParameters().eval(), (torch.randn(4, 8),), {}


def _weight_norm() -> Built:
    _seed()
    return WeightNormMLP().eval(), (torch.randn(4, 8),), {}


def _checkpointed() -> Built:
    _seed()
    return CheckpointedMLP().train(), (torch.randn(4, 8),), {}


def _teacher_student() -> Built:
    _seed()
    return TeacherStudent().train(), (torch.randn(4, 8),), {}


def _feature_pyramid() -> Built:
    _seed()
    return FeaturePyramid().eval(), (torch.randn(2, 3, 16, 16),), {}


def _dict_input() -> Built:
    _seed()
    batch = {
        "input_ids": torch.tensor([[3, 9, 4, 0], [7, 1, 12, 19]]),
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]),
    }
    return DictInput().eval(), (batch,), {}


def _identity_head() -> Built:
    _seed()
    return IdentityHead().eval(), (torch.randn(4, 8),), {}


# --------------------------------------------------------------------------------------------
# The zoo
# --------------------------------------------------------------------------------------------

_CASES = [
    Case("mlp", _mlp, note="Plain nn.Sequential MLP; the baseline."),
    Case(
        "reused_modules",
        _reused_modules,
        note="One Linear and one ReLU instance each called twice (ReLU three times) per forward.",
    ),
    Case(
        "tied_embedding",
        _tied_embedding,
        note="lm_head.weight is embed.weight: one Parameter, two owners, two names.",
    ),
    Case(
        "module_dict_list",
        _module_dict_list,
        note="ModuleList layers and ModuleDict heads; containers are never called themselves.",
    ),
    Case(
        "dict_output",
        _dict_output,
        note="Output is a dict of tensors, one of them a 0-dim auxiliary loss.",
    ),
    Case(
        "namedtuple_output",
        _namedtuple_output,
        note="Output is a typing.NamedTuple (a tuple subclass with field names).",
    ),
    Case(
        "dataclass_output",
        _dataclass_output,
        note="Output is a (non-frozen) dataclass holding a tensor tuple; LayerNorm reused twice.",
    ),
    Case(
        "lstm",
        _lstm,
        note="batch_first LSTM returns (out, (h, c)); h and c are (layers, batch, hidden).",
    ),
    Case(
        "gru_h0",
        _gru_h0,
        note="GRU called with an explicit h0 second positional arg; h0 is (1, batch, hidden).",
    ),
    Case(
        "lstm_packed",
        _lstm_packed,
        note="LSTM input and output are PackedSequence (a namedtuple with flattened data).",
    ),
    Case(
        "keyword_only",
        _keyword_only,
        note="forward(x, *, mask, temperature): hooks need with_kwargs=True to see them.",
    ),
    Case(
        "batchnorm_dropout_train",
        _batchnorm_dropout_train,
        note="Train mode: BatchNorm updates running stats, Dropout draws from the global RNG.",
    ),
    Case(
        "token_ids",
        _token_ids,
        note="int64 token ids into Embedding(padding_idx=0); rows of zeros are padding.",
    ),
    Case(
        "embedding_bag",
        _embedding_bag,
        note="EmbeddingBag(ids, offsets): 8 flat ids in, 3 bags out; input dim 0 is not batch.",
    ),
    Case(
        "bool_mask",
        _bool_mask,
        note="Bool padding mask argument; masked_fill with finfo.min before softmax.",
    ),
    Case(
        "empty_batch",
        _empty_batch,
        note="Batch size 0: every activation is empty, so any mean/std over it is NaN.",
    ),
    Case(
        "nested_sequential",
        _nested_sequential,
        note="Sequentials three deep: names like 0.1.0, every level is called.",
    ),
    Case(
        "resnet_blocks",
        _resnet_blocks,
        note="ReLU(inplace=True) reused per block and out += identity: outputs are overwritten.",
    ),
    Case(
        "transformer_encoder",
        _transformer_encoder,
        note="Eval + no_grad + padding mask: layers see NestedTensors or take the fused fast path.",
    ),
    Case(
        "multihead_attention",
        _multihead_attention,
        note="MHA cross-attention returns (out, per-head weights); its out_proj is never called.",
    ),
    Case(
        "non_tensor_args",
        _non_tensor_args,
        note="forward(x, 2, 'max') with int and str args; returns (tensor, None, int).",
    ),
    Case(
        "lazy_linear",
        _lazy_linear,
        note="LazyLinear: UninitializedParameter until the first forward, then becomes Linear.",
    ),
    Case(
        "tiny_gpt",
        _tiny_gpt,
        note="Positions (arange) and causal mask built in forward; heads split by view/transpose.",
    ),
    Case(
        "gru_cell_loop",
        _gru_cell_loop,
        note="State from torch.zeros in forward; the same GRUCell is called once per time step.",
    ),
    Case(
        "conv_upsample",
        _conv_upsample,
        note="Conv1d, LayerNorm over channels via transposes, Upsample, 1-D to 2-D PixelShuffle.",
    ),
    Case(
        "complex_fft",
        _complex_fft,
        note="A submodule returns a complex64 tensor (rfft); the next one takes its abs.",
    ),
    Case("float64", _float64, note="Model and input in float64."),
    Case("bfloat16", _bfloat16, note="Model and input in bfloat16 on CPU."),
    Case("float16", _float16, note="Model and input in float16 on CPU."),
    Case(
        "mixed_precision",
        _mixed_precision,
        note="float32 trunk, bfloat16 head; dtype changes between module calls.",
    ),
    Case(
        "cnn_cross_entropy",
        _cnn_cross_entropy,
        loss_fn=nn.CrossEntropyLoss,
        target=_cnn_targets,
        note="Train mode CNN classifier with an nn.CrossEntropyLoss and int64 class targets.",
    ),
    Case(
        "regression_mse",
        _regression_mse,
        loss_fn=lambda: F.mse_loss,
        target=_regression_targets,
        note="Train mode; the loss is a plain function (F.mse_loss), target shape (4, 1).",
    ),
    Case(
        "returns_loss",
        _returns_loss,
        note="Train mode; labels kwarg, the loss module is a submodule called inside forward.",
    ),
    Case(
        "direct_forward_call",
        _direct_forward_call,
        note="encoder.forward(x) bypasses __call__: no hooks fire for encoder (its children do).",
    ),
    Case(
        "aliased_submodule",
        _aliased_submodule,
        note="One Linear registered as proj and proj_again; named_modules lists it once.",
    ),
    Case(
        "root_parameters",
        _root_parameters,
        note="Parameters and a buffer owned by the root and used via F.linear, not a child.",
    ),
    Case(
        "weight_norm",
        _weight_norm,
        note="parametrizations.weight_norm: reading .weight calls a module inside Linear.forward.",
    ),
    Case(
        "checkpointed",
        _checkpointed,
        note="Train mode; checkpoint re-fires some inner forward hooks during backward.",
    ),
    Case(
        "teacher_student",
        _teacher_student,
        note="Train mode; teacher runs under no_grad with frozen params, output detached.",
    ),
    Case(
        "feature_pyramid",
        _feature_pyramid,
        note="Output is a list of three feature maps at different resolutions.",
    ),
    Case(
        "dict_input",
        _dict_input,
        note="A single dict argument with int64 ids and an int64 0/1 attention mask.",
    ),
    Case(
        "identity_head",
        _identity_head,
        note="fc is nn.Identity: its output is the very same tensor object as its input.",
    ),
]

ZOO: dict[str, Case] = {case.name: case for case in _CASES}
assert len(ZOO) == len(_CASES), "duplicate case names"


# --------------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------------


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside a (possibly nested) output, in a stable order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    if hasattr(obj, "__dataclass_fields__"):
        return [t for name in obj.__dataclass_fields__ for t in _tensors(getattr(obj, name))]
    return []


def _run(case: Case, eval_mode: bool, reseed: bool) -> Any:
    model, args, kwargs = case.build()
    if eval_mode:
        model.eval()
    if reseed:
        torch.manual_seed(1234)
    return model(*args, **kwargs)


def _same(a: Any, b: Any) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return type(a) is type(b) and len(ta) == len(tb) and all(map(torch.equal, ta, tb))


def _main() -> None:
    torch.set_num_threads(2)
    for case in ZOO.values():
        model, args, kwargs = case.build()
        start = time.perf_counter()
        out = model(*args, **kwargs)
        ms = 1000 * (time.perf_counter() - start)
        tensors = _tensors(out)
        assert tensors, f"{case.name}: no tensor in output"
        assert all(bool(t.isfinite().all()) for t in tensors), f"{case.name}: non-finite output"
        for eval_mode in (False, True):
            for reseed in (False, True):
                a = _run(case, eval_mode, reseed)
                b = _run(case, eval_mode, reseed)
                assert _same(a, b), f"{case.name}: not reproducible ({eval_mode=}, {reseed=})"
        extra = ""
        if case.loss_fn is not None and case.target is not None:
            loss = case.loss_fn()(out, case.target())
            assert loss.dim() == 0 and bool(loss.isfinite()), f"{case.name}: bad loss"
            loss.backward()
            extra = f"  loss={loss.item():.4f}"
        mode = "train" if model.training else "eval"
        print(f"{case.name:26s} {mode:5s} {type(out).__name__:14s} {ms:6.1f} ms{extra}")
    print(f"{len(ZOO)} cases OK")


if __name__ == "__main__":
    _main()
