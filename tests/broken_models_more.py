"""More broken models: advice that must be the fix a maintainer would give.

The conventions are those of ``tests/broken_models.py`` (one ``BUG`` marker per case, on the
line that calls the failing module or op). ``words`` must appear in the diagnosis (the name of
the input at fault, the layer to transpose), ``absent`` must not (the misleading fix: a flatten
for a per-token head, ``BatchNorm1d(L)`` for a channels-last sequence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.broken_models import Broken

# ---------------------------------------------------------------------------------------------
# Per-token heads: a Linear on (B, T, D) acts per position
# ---------------------------------------------------------------------------------------------


class LSTMTagger(nn.Module):
    """The tag head is sized for the embedding width, not the LSTM's hidden size."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 24)
        self.lstm = nn.LSTM(24, 40, batch_first=True)
        self.head = nn.Linear(24, 9)

    def forward(self, tokens):
        h, _ = self.lstm(self.emb(tokens))
        return self.head(h)  # BUG


def build_lstm_tagger():
    torch.manual_seed(0)
    return LSTMTagger(), (torch.randint(0, 50, (3, 11)),), {}


class BiGRUTagger(nn.Module):
    """A bidirectional GRU doubles the width; the head kept hidden_size."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 32, batch_first=True, bidirectional=True)
        self.out = nn.Linear(32, 5)

    def forward(self, x):
        h, _ = self.gru(x)
        return self.out(h)  # BUG


def build_bigru_tagger():
    torch.manual_seed(0)
    return BiGRUTagger(), (torch.randn(2, 7, 16),), {}


class TinyLM(nn.Module):
    """The language-model head was written for d_model=64, the encoder uses 48."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(120, 48)
        layer = nn.TransformerEncoderLayer(48, 4, 96, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.lm_head = nn.Linear(64, 120)

    def forward(self, ids):
        return self.lm_head(self.encoder(self.tok(ids)))  # BUG


def build_tiny_lm():
    torch.manual_seed(0)
    return TinyLM(), (torch.randint(0, 120, (2, 10)),), {}


class FeedForward(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))  # BUG


class FFNBlock(nn.Module):
    """The down-projection of a transformer MLP assumes a 2x expansion; up makes 4x."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.mlp = FeedForward(32)

    def forward(self, x):
        return x + self.mlp(self.norm(x))


def build_ffn_block():
    torch.manual_seed(0)
    return FFNBlock(), (torch.randn(2, 6, 32),), {}


class SeqClassifierNoFlatten(nn.Module):
    """The classifier reads the whole sequence (T*D inputs) but forward never flattens it."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.fc = nn.Linear(12 * 16, 3)

    def forward(self, x):
        h = torch.relu(self.proj(x))
        return self.fc(h)  # BUG


def build_seq_no_flatten():
    torch.manual_seed(0)
    return SeqClassifierNoFlatten(), (torch.randn(4, 12, 8),), {}


class ConvThenTokenLinear(nn.Module):
    """A Conv1d gives (B, C, L); the per-step Linear needs (B, L, C): the transpose is missing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(10, 32, 3, padding=1)
        self.proj = nn.Linear(32, 6)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.proj(h)  # BUG


def build_conv_then_token_linear():
    torch.manual_seed(0)
    return ConvThenTokenLinear(), (torch.randn(2, 10, 25),), {}


class PatchEmbedHead(nn.Module):
    """Patch tokens are (B, N, D); the classifier was sized for the patch pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 40, kernel_size=8, stride=8)
        self.cls = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.cls(tokens).mean(1)  # BUG


def build_patch_head():
    torch.manual_seed(0)
    return PatchEmbedHead(), (torch.randn(2, 3, 32, 32),), {}


# ---------------------------------------------------------------------------------------------
# BatchNorm on channels-last tensors
# ---------------------------------------------------------------------------------------------


class SeqBatchNorm(nn.Module):
    """BatchNorm1d(C) after a per-token Linear: the input is (B, L, C), BatchNorm1d reads dim 1."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 64)
        self.bn = nn.BatchNorm1d(64)

    def forward(self, x):
        return self.bn(self.proj(x))  # BUG


def build_seq_batchnorm():
    torch.manual_seed(0)
    return SeqBatchNorm(), (torch.randn(4, 30, 12),), {}


class EmbeddingBatchNorm(nn.Module):
    """Token embeddings (B, T, D) normalized with BatchNorm1d(D)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 16)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, ids):
        return self.bn(self.emb(ids))  # BUG


def build_embedding_batchnorm():
    torch.manual_seed(0)
    return EmbeddingBatchNorm(), (torch.randint(0, 40, (3, 9)),), {}


class ImageBatchNormChannelsLast(nn.Module):
    """BatchNorm2d on an (N, H, W, C) tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(self.bn(x))  # BUG


def build_image_bn_channels_last():
    torch.manual_seed(0)
    return ImageBatchNormChannelsLast(), (torch.rand(2, 20, 20, 3),), {}


class MLPBatchNormWidth(nn.Module):
    """BatchNorm1d sized for a hidden width that changed: no dim of the input is 128."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(20, 96)
        self.bn1 = nn.BatchNorm1d(128)

    def forward(self, x):
        return self.bn1(self.fc1(x))  # BUG


def build_mlp_bn_width():
    torch.manual_seed(0)
    return MLPBatchNormWidth(), (torch.randn(8, 20),), {}


# ---------------------------------------------------------------------------------------------
# Embeddings: positions vs tokens
# ---------------------------------------------------------------------------------------------


class LearnedPositions(nn.Module):
    """A position table of 32 rows indexed by arange(T) with T = 40."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(100, 16)
        self.pos = nn.Embedding(32, 16)

    def forward(self, ids):
        positions = torch.arange(ids.size(1), device=ids.device)
        return self.tok(ids) + self.pos(positions)  # BUG


def build_learned_positions():
    torch.manual_seed(0)
    return LearnedPositions(), (torch.randint(0, 100, (2, 40)),), {}


class PositionIdsBuffer(nn.Module):
    """Positions from a registered buffer, expanded per batch; the sequence outgrew the table."""

    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(64, 8)
        self.position_embeddings = nn.Embedding(24, 8)
        self.register_buffer("position_ids", torch.arange(64).unsqueeze(0), persistent=False)

    def forward(self, ids):
        position_ids: torch.Tensor = self.position_ids  # type: ignore[assignment]
        pos = position_ids[:, : ids.size(1)].expand(ids.size(0), -1)
        return self.word(ids) + self.position_embeddings(pos)  # BUG


def build_position_ids_buffer():
    torch.manual_seed(0)
    return PositionIdsBuffer(), (torch.randint(0, 64, (2, 30)),), {}


class TokenIdsTooLarge(nn.Module):
    """A user model whose vocabulary is smaller than the ids fed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, ids):
        return self.fc(self.embed(ids).mean(1))  # BUG


def build_token_ids_too_large():
    torch.manual_seed(0)
    ids = torch.randint(0, 30, (2, 6))
    ids[1, 3] = 34
    return TokenIdsTooLarge(), (ids,), {}


class SegmentEmbedding(nn.Module):
    """Two segment types; the collate function numbers the third sentence 2."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(50, 8)
        self.segment = nn.Embedding(2, 8)

    def forward(self, ids, segment_ids):
        return self.tok(ids) + self.segment(segment_ids)  # BUG


def build_segment_embedding():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 9))
    seg = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2]] * 2)
    return SegmentEmbedding(), (ids, seg), {}


# ---------------------------------------------------------------------------------------------
# Inputs that disagree with a configured module: fix the input
# ---------------------------------------------------------------------------------------------


class SmallResNetStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))  # BUG
        return self.fc(self.pool(x).flatten(1))


def build_rgba_stem():
    torch.manual_seed(0)
    return SmallResNetStem(), (torch.rand(2, 4, 32, 32),), {}


def build_gray_stem():
    torch.manual_seed(0)
    return SmallResNetStem(), (torch.rand(2, 1, 32, 32),), {}


def build_channels_last_stem():
    torch.manual_seed(0)
    return SmallResNetStem(), (torch.rand(2, 32, 32, 3),), {}


class PaddedStem(nn.Module):
    """Channels-last images padded before the conv: F.pad pads the last two dims (W and C)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        x = F.pad(x, (1, 1, 1, 1))
        return self.conv(x)  # BUG


def build_padded_channels_last():
    torch.manual_seed(0)
    return PaddedStem(), (torch.rand(2, 16, 16, 3),), {}


class MelFrontend(nn.Module):
    """An 80-mel speech encoder fed 128-mel features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(80, 64, 3, padding=1)
        self.conv2 = nn.Conv1d(64, 64, 3, stride=2, padding=1)

    def forward(self, mel):
        h = F.gelu(self.conv1(mel))  # BUG
        return F.gelu(self.conv2(h)).transpose(1, 2)


def build_mel_frontend():
    torch.manual_seed(0)
    return MelFrontend(), (torch.randn(2, 128, 50),), {}


class ConvToConvInside(nn.Module):
    """Layers that disagree with each other: rebuild the layer, not the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 48, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))  # BUG


def build_conv_to_conv_inside():
    torch.manual_seed(0)
    return ConvToConvInside(), (torch.randn(2, 3, 16, 16),), {}


# ---------------------------------------------------------------------------------------------
# Inputs named as inputs; the user's own checks
# ---------------------------------------------------------------------------------------------


class MaskedEncoder(nn.Module):
    """A padding mask built for another sequence length."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x, mask):
        scores = self.proj(x) @ x.transpose(1, 2)
        scores = scores.masked_fill(mask[:, None, :] == 0, float("-inf"))  # BUG
        return scores.softmax(-1) @ x


def build_masked_encoder():
    torch.manual_seed(0)
    return MaskedEncoder(), (torch.randn(2, 10, 16), torch.ones(2, 12)), {}


class AssertingBlock(nn.Module):
    """The user's own assert on the input width."""

    def __init__(self) -> None:
        super().__init__()
        self.dim = 64
        self.fc = nn.Linear(64, 8)

    def forward(self, x):
        assert x.shape[-1] == self.dim, "bad input width"  # BUG
        return self.fc(x)


def build_asserting_block():
    torch.manual_seed(0)
    return AssertingBlock(), (torch.randn(4, 48),), {}


class RaisingBlock(nn.Module):
    """A shape check written as a ValueError."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 16
        self.fc = nn.Linear(16, 4)

    def forward(self, audio):
        if audio.shape[1] != self.frames:
            raise ValueError("wrong number of frames")  # BUG
        return self.fc(audio)


def build_raising_block():
    torch.manual_seed(0)
    return RaisingBlock(), (torch.randn(3, 20),), {}


# ---------------------------------------------------------------------------------------------
# The batch changed upstream
# ---------------------------------------------------------------------------------------------


class TimeFoldedClassifier(nn.Module):
    """view(-1, D) folds time into the batch before a per-sequence classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 20, batch_first=True)
        self.fc = nn.Linear(20, 4)

    def forward(self, x):
        h, _ = self.rnn(x)
        h = h.reshape(-1, 20)  # BUG
        return self.fc(h)


def build_time_folded():
    torch.manual_seed(0)
    return TimeFoldedClassifier(), (torch.randn(5, 7, 8),), {}


class LayerFoldedPooler(nn.Module):
    """Stacking per-layer features and viewing them as (-1, D) puts the layers in the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(12, 12) for _ in range(3))
        self.head = nn.Linear(12, 2)

    def forward(self, x):
        outs = []
        for layer in self.layers:
            x = torch.tanh(layer(x))
            outs.append(x)
        h = torch.stack(outs, 1).view(-1, 12)  # BUG
        return self.head(h)


def build_layer_folded():
    torch.manual_seed(0)
    return LayerFoldedPooler(), (torch.randn(6, 12),), {}


class SeqFirstLSTMClassifier(nn.Module):
    """An LSTM left batch_first=False reads (B, T, D) as T-major; out[-1] is one per step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(10, 20)
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        out, _ = self.lstm(x)  # BUG
        return self.fc(out[-1])


def build_seq_first_lstm():
    torch.manual_seed(0)
    return SeqFirstLSTMClassifier(), (torch.randn(4, 9, 10),), {}


class PatchDiscriminator(nn.Module):
    """A conv stack that leaves a 4x4 map; view(-1) gives 16 scores per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 1, 4, 2, 1),
        )

    def forward(self, x):
        return torch.sigmoid(self.net(x)).view(-1)  # BUG


def build_patch_discriminator():
    torch.manual_seed(0)
    return PatchDiscriminator(), (torch.randn(3, 3, 16, 16),), {}


class FlatMLP(nn.Module):
    """A plain MLP on flattened MNIST whose first layer is sized for 32x32 images."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(32 * 32, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc2(torch.relu(self.fc1(x)))  # BUG


def build_flat_mlp():
    torch.manual_seed(0)
    return FlatMLP(), (torch.randn(4, 1, 28, 28),), {}


class ConvNetFC(nn.Module):
    """The classic MNIST net with the fc sized for one conv too few."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.fc1 = nn.Linear(20 * 5 * 5, 50)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, 20 * 4 * 4)
        return self.fc1(x)  # BUG


def build_convnet_fc():
    torch.manual_seed(0)
    return ConvNetFC(), (torch.randn(2, 1, 28, 28),), {}


# ---------------------------------------------------------------------------------------------
# More layouts: channels-last sequences into Conv1d and norms, per-pixel heads
# ---------------------------------------------------------------------------------------------


class TextCNN(nn.Module):
    """The classic text CNN: embeddings are (B, T, D) but Conv1d wants (B, D, T)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.conv = nn.Conv1d(32, 16, 3)
        self.fc = nn.Linear(16, 2)

    def forward(self, ids):
        h = torch.relu(self.conv(self.emb(ids)))  # BUG
        return self.fc(h.max(-1).values)


def build_text_cnn():
    torch.manual_seed(0)
    return TextCNN(), (torch.randint(0, 100, (4, 20)),), {}


class FrameConv(nn.Module):
    """Feature frames given as (batch, frames, features) to a Conv1d front end."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(40, 24, 5, padding=2)

    def forward(self, frames):
        return self.conv(frames)  # BUG


def build_frame_conv():
    torch.manual_seed(0)
    return FrameConv(), (torch.randn(2, 100, 40),), {}


class TokenMLPWithNorm(nn.Module):
    """BatchNorm1d inside a Sequential applied per token: (B, L, C) after the Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 64), nn.BatchNorm1d(64), nn.ReLU())

    def forward(self, x):
        return self.net(x)  # BUG


def build_token_mlp_norm():
    torch.manual_seed(0)
    return TokenMLPWithNorm(), (torch.randn(4, 30, 12),), {}


class LearnedPositionParameter(nn.Module):
    """A learned position parameter of 64 rows sliced to the sequence length of 80."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(100, 16)
        self.pos_embedding = nn.Parameter(torch.zeros(1, 64, 16))

    def forward(self, ids):
        x = self.tok(ids)
        return x + self.pos_embedding[:, : x.size(1)]  # BUG


def build_position_parameter():
    torch.manual_seed(0)
    return LearnedPositionParameter(), (torch.randint(0, 100, (2, 80)),), {}


class PerPixelHead(nn.Module):
    """A ConvNeXt-style per-pixel Linear on channels-last features, sized for the wrong width."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Linear(32, 64)

    def forward(self, x):
        return self.pw(self.dw(x).permute(0, 2, 3, 1))  # BUG


def build_per_pixel_head():
    torch.manual_seed(0)
    return PerPixelHead(), (torch.randn(2, 16, 8, 8),), {}


class ConvThenNorm(nn.Module):
    """BatchNorm1d sized for another conv width: layers disagree, nothing is channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 32, 3, padding=1)
        self.bn = nn.BatchNorm1d(64)

    def forward(self, x):
        return self.bn(self.conv(x))  # BUG


def build_conv_then_norm():
    torch.manual_seed(0)
    return ConvThenNorm(), (torch.randn(4, 8, 64),), {}


class BagOfEmbeddings(nn.Module):
    """A mean-of-embeddings classifier; the data loader yields ids as (seq, batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(60, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


def build_seq_first_ids():
    torch.manual_seed(0)
    ids = torch.randint(0, 60, (20, 4))  # BUG
    return BagOfEmbeddings(), (ids,), {}


class TaggerWithLoss(nn.Module):
    """A tagger that computes its loss in forward; the labels were cut one token short."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 7)

    def forward(self, input_ids, labels):
        logits = self.head(self.emb(input_ids))
        return F.cross_entropy(logits.view(-1, 7), labels.reshape(-1))


def build_tagger_short_labels():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (3, 10))
    labels = torch.randint(0, 7, (3, 10))[:, 1:]  # BUG
    return TaggerWithLoss(), (ids, labels), {}


class PoolWithMask(nn.Module):
    """Masked mean pooling; the mask comes from another batch."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)

    def forward(self, ids, attention_mask):
        h = self.emb(ids)
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)


def build_pool_mask_batch():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones(4, 9, dtype=torch.long)  # BUG
    return PoolWithMask(), (ids, mask), {}


def _long_target(*shape: int, high: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, high, shape)


class GRUClassifierLoss(nn.Module):
    """A 2-layer GRU's final hidden state viewed to (-1, H): its layers fold into the batch,
    and the loss inside forward sees 2x the labels."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x, labels):
        _, h = self.rnn(x)
        h = h.view(-1, 16)  # BUG
        return F.cross_entropy(self.head(h), labels)


def build_gru_hidden_folded():
    torch.manual_seed(0)
    return GRUClassifierLoss(), (torch.randn(4, 7, 8), torch.randint(0, 3, (4,))), {}


class BiLSTMEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(10, 12, batch_first=True, bidirectional=True)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return h.reshape(-1, 12)  # BUG


class BiLSTMClassifier(nn.Module):
    """A bidirectional LSTM's h_n reshaped to (-1, H): both directions become samples."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoder()
        self.out = nn.Linear(12, 2)

    def forward(self, x, y):
        logits = self.out(self.encoder(x))
        return F.cross_entropy(logits, y)


def build_bilstm_hidden_folded():
    torch.manual_seed(0)
    return BiLSTMClassifier(), (torch.randn(5, 6, 10), torch.randint(0, 2, (5,))), {}


class DCGANDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(3, 8, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(8, 1, 4, 1, 0),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)  # BUG


class DiscriminatorStep(nn.Module):
    """The discriminator's loss computed in one module: the conv stack leaves 5x5 scores per
    image, which view(-1) turns into 25 'samples' each."""

    def __init__(self) -> None:
        super().__init__()
        self.netD = DCGANDiscriminator()

    def forward(self, real):
        out = self.netD(real)
        return F.binary_cross_entropy(out, torch.ones(real.size(0)))


def build_discriminator_step():
    torch.manual_seed(0)
    return DiscriminatorStep(), (torch.randn(4, 3, 16, 16),), {}


class TokenFoldClassifier(nn.Module):
    """Per-token features reshaped to rows before a sentence classifier: every token of
    every sentence becomes a sample."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), num_layers=1
        )
        self.classify = nn.Linear(32, 5)

    def forward(self, ids, labels):
        h = self.encoder(self.embed(ids))
        h = h.reshape(-1, h.size(-1))  # BUG
        return F.cross_entropy(self.classify(h), labels)


def build_token_fold():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (3, 9))
    return TokenFoldClassifier().eval(), (ids, torch.randint(0, 5, (3,))), {}


class SquareMapConvs(nn.Module):
    """conv2 built for 8 channels after a conv that makes 16, on an 8x8 map: the map's width
    equals in_channels, which must not read as a channels-last input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3)
        self.conv2 = nn.Conv2d(8, 32, 3)
        self.bn = nn.BatchNorm2d(32)

    def forward(self, x):
        return self.bn(self.conv2(self.conv1(x)))  # BUG


def build_square_map_convs():
    torch.manual_seed(0)
    return SquareMapConvs(), (torch.randn(2, 3, 10, 10),), {}


class TinyPositionLM(nn.Module):
    """A position table indexed with arange(batch): every token of sample b gets position b."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(50, 16)
        self.pos = nn.Embedding(32, 16)
        self.head = nn.Linear(16, 50)

    def forward(self, ids):
        positions = torch.arange(ids.size(0))  # BUG
        h = self.tok(ids) + self.pos(positions).unsqueeze(1)
        return self.head(h)


def build_position_by_batch():
    torch.manual_seed(0)
    return TinyPositionLM(), (torch.randint(0, 50, (4, 10)),), {}


class FlooredHeads(nn.Module):
    """A hand-written attention whose head size is floored: 30 // 4 = 7, 28 of 30 used."""

    def __init__(self, embed_dim: int = 30, num_heads: int = 4) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads  # BUG
        self.qkv = nn.Linear(embed_dim, 3 * num_heads * self.head_dim)
        self.proj = nn.Linear(num_heads * self.head_dim, embed_dim)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).unbind(2)
        att = torch.softmax(q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2), -1)
        out = (att @ v.transpose(1, 2)).transpose(1, 2).reshape(b, t, -1)
        return self.proj(out)


class FlooredHeadsBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = FlooredHeads()
        self.norm = nn.LayerNorm(30)

    def forward(self, x):
        return self.norm(x + self.attn(x))


def build_floored_heads():
    torch.manual_seed(0)
    return FlooredHeadsBlock(), (torch.randn(2, 5, 30),), {}


class LSTMOutputTuple(nn.Module):
    """The LSTM's (output, (h_n, c_n)) passed on to a Linear as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(10, 20, batch_first=True)
        self.fc = nn.Linear(20, 5)

    def forward(self, x):
        out = self.lstm(x)  # BUG
        return self.fc(out)


def build_lstm_output_tuple():
    torch.manual_seed(0)
    return LSTMOutputTuple(), (torch.randn(2, 7, 10),), {}


class FlattenBeforeConv(nn.Module):
    """The images flattened at the top of forward, as if for an MLP, then given to a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.fc = nn.Linear(16 * 30 * 30, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)  # BUG
        x = F.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def build_flatten_before_conv():
    torch.manual_seed(0)
    return FlattenBeforeConv(), (torch.randn(2, 3, 32, 32),), {}


class ScoreNorm(nn.Module):
    """A one-sample batch squeezed to a scalar before a BatchNorm1d that reads (N, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(10, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x):
        score = self.fc(x).squeeze()  # BUG
        return self.bn(score)


def build_squeezed_batch():
    torch.manual_seed(0)
    return ScoreNorm().eval(), (torch.randn(1, 10),), {}


class OneHotClassifier(nn.Module):
    """One-hot targets over 6 classes for a classifier built with 4 outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(12, 16)
        self.classifier = nn.Linear(16, 4)

    def forward(self, x, y):
        logits = self.classifier(torch.relu(self.body(x)))
        return F.cross_entropy(logits, y)  # BUG


def build_one_hot_classes():
    torch.manual_seed(0)
    y = F.one_hot(torch.tensor([0, 5, 2]), 6).float()
    return OneHotClassifier(), (torch.randn(3, 12), y), {}


class PaddingMaskAttention(nn.Module):
    """A (B, T) padding mask applied to (B, H, T, T) scores without its head and query dims."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.heads = 4

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / 2.0
        scores = scores.masked_fill(mask == 0, -1e9)  # BUG
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)


def build_padding_mask_attention():
    torch.manual_seed(0)
    return PaddingMaskAttention(), (torch.randn(2, 6, 16), torch.ones(2, 6)), {}


class WideRegressor(nn.Module):
    """A regression head with 10 outputs for one target value per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(5, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x, y):
        return F.mse_loss(self.out(torch.relu(self.hidden(x))), y)  # BUG


def build_wide_regressor():
    torch.manual_seed(0)
    return WideRegressor(), (torch.randn(4, 5), torch.randn(4)), {}


class SmallImageNet(nn.Module):
    """A CNN given one image without its batch dim: conv accepts it unbatched, and
    x.view(x.size(0), -1) takes the 8 channels for a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        x = x.view(x.size(0), -1)
        return self.fc(x)


def build_unbatched_image():
    torch.manual_seed(0)
    image = torch.randn(3, 32, 32)  # BUG
    return SmallImageNet(), (image,), {}


class HardCodedBatch(nn.Module):
    """x.view(32, -1) written for a batch of 32: a smaller last batch folds into 32 rows."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.view(32, -1)  # BUG
        return self.fc(x)


def build_hard_coded_batch():
    torch.manual_seed(0)
    return HardCodedBatch(), (torch.randn(8, 1, 28, 28),), {}


class FloatClassIds(nn.Module):
    """Class indices kept as floats for cross_entropy."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, y):
        return F.cross_entropy(self.fc(x), y)  # BUG


def build_float_class_ids():
    torch.manual_seed(0)
    return FloatClassIds(), (torch.randn(3, 4), torch.tensor([0.0, 2.0, 1.0])), {}


class ProbabilityHead(nn.Module):
    """softmax over dim=1, written for a batch, given one sample without its batch dim."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)  # BUG


def build_unbatched_sample():
    torch.manual_seed(0)
    return ProbabilityHead(), (torch.randn(4),), {}


class ScoresIntoBCE(nn.Module):
    """A Linear's raw scores into binary_cross_entropy, which takes probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x, y):
        return F.binary_cross_entropy(self.fc(x).squeeze(-1), y)  # BUG


def build_scores_into_bce():
    torch.manual_seed(0)
    return ScoresIntoBCE(), (torch.randn(3, 4) * 5, torch.tensor([1.0, 0.0, 1.0])), {}


class TrailingOneIds(nn.Module):
    """Token ids with a trailing dim of 1 (as a data loader stacked them) into an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.fc(out[:, -1])


def build_trailing_one_ids():
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (4, 9, 1))  # BUG
    return TrailingOneIds(), (ids,), {}


class KeysTransposedWrong(nn.Module):
    """k.transpose(1, 2) on (B, H, T, d) keys: the heads and positions swap, not T and d."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96)
        self.heads = 4

    def forward(self, x):
        b, t, d = x.shape
        q, k, _ = self.qkv(x).split(d, dim=-1)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        return q @ k.transpose(1, 2)  # BUG


def build_keys_transposed_wrong():
    torch.manual_seed(0)
    return KeysTransposedWrong(), (torch.randn(2, 6, 32),), {}


MORE: list[Broken] = [
    # per-token heads
    Broken(
        "lstm_tagger_head_width",
        build_lstm_tagger,
        module="head",
        fix_numbers=("40", "9"),
        op="linear",
        absent=("flatten", "440"),
        note="the head of a tagger reads each step's 40 LSTM features: nn.Linear(40, 9)",
    ),
    Broken(
        "bigru_tagger_doubled_width",
        build_bigru_tagger,
        module="out",
        fix_numbers=("64", "5"),
        op="linear",
        absent=("flatten", "448"),
        note="bidirectional doubles the width: 2*32 = 64 features per step",
    ),
    Broken(
        "tiny_lm_head_d_model",
        build_tiny_lm,
        module="lm_head",
        fix_numbers=("48", "120"),
        op="linear",
        absent=("flatten", "480"),
        note="per-token LM head: nn.Linear(48, 120), keep the 10 positions",
    ),
    Broken(
        "ffn_down_projection",
        build_ffn_block,
        module="mlp.down",
        fix_numbers=("128", "32"),
        op="linear",
        absent=("flatten",),
        note="up makes 4*32 = 128 features per token; down expects 64",
    ),
    Broken(
        "sequence_classifier_forgot_flatten",
        build_seq_no_flatten,
        module="fc",
        fix_numbers=("192", "12", "16"),
        op="linear",
        words=("flatten",),
        note="fc is sized for T*D = 12*16 = 192: the user meant to flatten",
    ),
    Broken(
        "conv1d_output_into_token_linear",
        build_conv_then_token_linear,
        module="proj",
        fix_numbers=("25", "32"),
        op="linear",
        words=("transpose(1, 2)",),
        absent=("flatten",),
        note="(B, C=32, L=25) into Linear(32): move the channels last",
    ),
    Broken(
        "patch_tokens_into_pixel_sized_head",
        build_patch_head,
        module="cls",
        fix_numbers=("40", "10"),
        op="linear",
        absent=("flatten",),
        note="patch tokens have 40 features each; the head was sized for 3*8*8 pixels",
    ),
    # batchnorm channels last
    Broken(
        "batchnorm1d_on_tokens",
        build_seq_batchnorm,
        module="bn",
        fix_numbers=("64", "30"),
        op="batch_norm",
        words=("transpose(1, 2)",),
        absent=("BatchNorm1d(30)",),
        note="(B, L=30, C=64) into BatchNorm1d(64): transpose to (B, C, L) and back",
    ),
    Broken(
        "batchnorm1d_on_embeddings",
        build_embedding_batchnorm,
        module="bn",
        fix_numbers=("16", "9"),
        op="batch_norm",
        words=("transpose(1, 2)",),
        absent=("BatchNorm1d(9)",),
        note="embeddings are (B, T, D): BatchNorm1d(D) wants (B, D, T)",
    ),
    Broken(
        "batchnorm2d_channels_last",
        build_image_bn_channels_last,
        module="bn",
        fix_numbers=("3",),
        op="batch_norm",
        words=("permute(0, 3, 1, 2)",),
        absent=("BatchNorm2d(20)",),
        note="(N, H, W, C) images: permute before the norm",
    ),
    Broken(
        "batchnorm1d_width_changed",
        build_mlp_bn_width,
        module="bn1",
        fix_numbers=("96",),
        op="batch_norm",
        note="no dim of (8, 96) is 128: the norm is sized for another width",
    ),
    # embeddings
    Broken(
        "position_table_too_small",
        build_learned_positions,
        module="pos",
        fix_numbers=("40", "32"),
        op="embedding",
        words=("sequence length", "positions"),
        absent=("vocabulary",),
        note="arange(40) into a 32-row position table",
    ),
    Broken(
        "position_ids_buffer_too_small",
        build_position_ids_buffer,
        module="position_embeddings",
        fix_numbers=("30", "24"),
        op="embedding",
        words=("sequence length", "positions"),
        absent=("vocabulary",),
        note="position_ids[:, :30] into a 24-row table",
    ),
    Broken(
        "token_id_beyond_vocabulary",
        build_token_ids_too_large,
        module="embed",
        fix_numbers=("34", "30"),
        op="embedding",
        words=("vocabulary",),
        absent=("sequence length",),
        note="token ids are user input: id 34 with a 30-word vocabulary",
    ),
    Broken(
        "segment_id_out_of_range",
        build_segment_embedding,
        module="segment",
        fix_numbers=("2",),
        op="embedding",
        words=("segment_ids",),
        note="segment ids hold 2 with two segment types: the input is wrong",
    ),
    # inputs vs configured modules
    Broken(
        "rgba_images_into_rgb_stem",
        build_rgba_stem,
        module="conv1",
        fix_numbers=("3", "4"),
        op="conv2d",
        words=("x[:, :3]",),
        absent=("Conv2d(4",),
        note="drop the alpha channel, keep the 3-channel stem",
    ),
    Broken(
        "grayscale_into_rgb_stem",
        build_gray_stem,
        module="conv1",
        fix_numbers=("3",),
        op="conv2d",
        words=("repeat(1, 3, 1, 1)",),
        absent=("Conv2d(1,",),
        note="repeat the gray channel rather than rebuild the stem",
    ),
    Broken(
        "channels_last_into_stem",
        build_channels_last_stem,
        module="conv1",
        fix_numbers=("3",),
        op="conv2d",
        words=("permute(0, 3, 1, 2)",),
        absent=("Conv2d(32",),
        note="(N, H, W, C) images",
    ),
    Broken(
        "channels_last_padded_first",
        build_padded_channels_last,
        module="conv",
        fix_numbers=("3",),
        op="conv2d",
        words=("permute(0, 3, 1, 2)",),
        absent=("Conv2d(18",),
        note="F.pad on (N, H, W, C) pads W and C: permute before padding",
    ),
    Broken(
        "mel_bins_mismatch",
        build_mel_frontend,
        module="conv1",
        fix_numbers=("80", "128"),
        op="conv1d",
        words=("input",),
        absent=("Conv1d(128",),
        note="the features have 128 mel bins; the frontend was trained on 80",
    ),
    Broken(
        "conv_to_conv_channels_inside",
        build_conv_to_conv_inside,
        module="conv2",
        fix_numbers=("24", "32"),
        op="conv2d",
        words=("conv1",),
        note="two layers disagree: rebuild one of them",
    ),
    # inputs named; own checks
    Broken(
        "padding_mask_wrong_length",
        build_masked_encoder,
        module="",
        fix_numbers=("12", "10"),
        op="masked_fill",
        words=("mask",),
        note="mask (2, 12) for a sequence of 10",
    ),
    Broken(
        "users_assert_on_width",
        build_asserting_block,
        module="",
        fix_numbers=("48", "64"),
        words=("x",),
        note="the user's assert: x is (4, 48), the check wants 64",
    ),
    Broken(
        "users_value_error_on_frames",
        build_raising_block,
        module="",
        fix_numbers=("20", "16"),
        words=("audio",),
        note="the user's ValueError: audio (3, 20), self.frames is 16",
    ),
    # batch changed upstream
    Broken(
        "time_folded_into_batch",
        build_time_folded,
        module="loss_fn",
        fix_numbers=("35", "5", "7"),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,
        target=lambda: _long_target(5, high=4),
        words=("time",),
        note="reshape(-1, 20) on (5, 7, 20) gives 35 rows: 7 steps folded into the batch",
    ),
    Broken(
        "layers_folded_into_batch",
        build_layer_folded,
        module="loss_fn",
        fix_numbers=("18", "6", "3"),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,
        target=lambda: _long_target(6, high=2),
        note="stack of 3 layers viewed as (-1, 12): 6*3 = 18 rows",
    ),
    Broken(
        "lstm_reads_batch_as_time",
        build_seq_first_lstm,
        module="loss_fn",
        fix_numbers=("9", "4"),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,
        target=lambda: _long_target(4, high=3),
        words=("batch_first",),
        note="batch_first=False: out[-1] is the last batch element's 9 steps",
    ),
    Broken(
        "patch_scores_per_sample",
        build_patch_discriminator,
        module="",  # the view in its forward, not the loss that noticed
        fix_numbers=("48", "3", "16"),
        op="binary_cross_entropy",
        loss_fn=nn.BCELoss,
        target=lambda: torch.ones(3),
        note="(3, 1, 4, 4) scores viewed as 48: 16 per sample, one expected",
    ),
    Broken(
        "flat_mlp_sized_for_32px",
        build_flat_mlp,
        module="fc1",
        fix_numbers=("784", "128"),
        op="linear",
        note="784 = 1*28*28 features, fc1 sized for 32*32",
    ),
    Broken(
        "mnist_fc_sized_for_5x5",
        build_convnet_fc,
        module="fc1",
        fix_numbers=("320",),
        op="linear",
        note="the view gives 320 = 20*4*4 per sample; fc1 expects 500",
    ),
    Broken(
        "text_cnn_conv1d_on_embeddings",
        build_text_cnn,
        module="conv",
        fix_numbers=("32", "20"),
        op="conv1d",
        words=("transpose(1, 2)",),
        absent=("in_channels=20", "Conv1d(20"),
        note="(B, T, D) embeddings into Conv1d(D): transpose to (B, D, T)",
    ),
    Broken(
        "frames_channels_last_into_conv1d",
        build_frame_conv,
        module="conv",
        fix_numbers=("40", "100"),
        op="conv1d",
        words=("frames.transpose(1, 2)",),
        absent=("feature count", "Conv1d(100"),
        note="(batch, frames, features) input: the features are last",
    ),
    Broken(
        "batchnorm1d_per_token_in_sequential",
        build_token_mlp_norm,
        module="net.1",
        fix_numbers=("64", "30"),
        op="batch_norm",
        words=("transpose(1, 2)",),
        absent=("BatchNorm1d(30)",),
        note="Linear then BatchNorm1d in a Sequential applied to (B, L, C)",
    ),
    Broken(
        "position_parameter_too_short",
        build_position_parameter,
        module="",
        fix_numbers=("80", "64"),
        words=("sequence length", "pos_embedding"),
        note="pos_embedding (1, 64, 16) sliced to 80 positions stops at 64",
    ),
    Broken(
        "per_pixel_linear_width",
        build_per_pixel_head,
        module="pw",
        fix_numbers=("16", "64"),
        op="linear",
        absent=("flatten",),
        note="a per-pixel Linear on (N, H, W, C): nn.Linear(16, 64), no flatten",
    ),
    Broken(
        "conv1d_then_batchnorm_width",
        build_conv_then_norm,
        module="bn",
        fix_numbers=("32",),
        op="batch_norm",
        absent=("transpose",),
        note="(4, 32, 64) from a Conv1d(8, 32): the norm's 64 is the wrong width, not a layout",
    ),
    Broken(
        "seq_first_token_ids",
        build_seq_first_ids,
        module="loss_fn",
        fix_numbers=("20", "4"),
        op="cross_entropy",
        loss_fn=nn.CrossEntropyLoss,
        target=lambda: _long_target(4, high=3),
        words=("ids.T", "seq-first"),
        absent=("give the target",),
        note="ids (20, 4) are (seq, batch): the model reads 20 sequences of 4 tokens",
    ),
    Broken(
        "labels_one_token_short",
        build_tagger_short_labels,
        module="",
        fix_numbers=("9", "10", "27", "30"),
        op="cross_entropy",
        words=("labels", "input_ids"),
        note="labels (3, 9) for input_ids (3, 10): 27 targets for 30 logits",
    ),
    Broken(
        "attention_mask_from_another_batch",
        build_pool_mask_batch,
        module="",
        fix_numbers=("4", "2"),
        op="mul",
        words=("attention_mask", "ids"),
        note="a mask of 4 rows for 2 sequences",
    ),
    Broken(
        "gru_hidden_state_folded_in_forward",
        build_gru_hidden_folded,
        module="",
        fix_numbers=("2", "4", "8", "16"),
        op="cross_entropy",
        words=("h_n[-1]", "head (Linear) then gives (4, 3)"),
        absent=("give the target",),
        note="h_n (2, 4, 16) viewed to (8, 16): layers folded into the batch",
    ),
    Broken(
        "bilstm_hidden_state_folded_in_encoder",
        build_bilstm_hidden_folded,
        module="encoder",
        fix_numbers=("2", "5", "10", "24"),
        op="cross_entropy",
        words=("torch.cat([h_n[-2], h_n[-1]], dim=1)",),
        absent=("give the target",),
        note="h_n (2, 5, 12) of both directions reshaped to (10, 12)",
    ),
    Broken(
        "discriminator_scores_map_in_forward",
        build_discriminator_step,
        module="netD",
        fix_numbers=("4", "25", "100"),
        op="binary_cross_entropy",
        words=(".mean((2, 3)).view(-1) gives (4,)",),
        absent=("target.size() must be",),
        note="a 5x5 map of scores per image viewed as 100 samples",
    ),
    Broken(
        "token_features_folded_before_classifier",
        build_token_fold,
        module="",
        fix_numbers=("3", "9", "27"),
        op="cross_entropy",
        words=("x[:, -1]", "(3, 32)"),
        absent=("give the target",),
        note="(3, 9, 32) token features reshaped to 27 rows for 3 labels",
    ),
    Broken(
        "conv_after_conv_on_a_square_map",
        build_square_map_convs,
        module="conv2",
        fix_numbers=("16", "32"),
        op="conv2d",
        words=("in_channels=16", "checked on the recorded shapes"),
        absent=("permute", "channels-last"),
        note="16 channels into a conv built for 8; the 8x8 map is not channels-last",
    ),
    Broken(
        "position_table_indexed_by_batch",
        build_position_by_batch,
        module="pos",
        kind="warning",
        fix_numbers=("4", "10", "9"),
        words=("torch.arange(x.size(1))",),
        note="arange(ids.size(0)) indexes the position table: positions 0..3 for 10 tokens",
    ),
    Broken(
        "attention_heads_floor_the_width",
        build_floored_heads,
        module="attn",
        kind="warning",
        fix_numbers=("30", "4", "7", "28"),
        note="30 features in 4 heads of 30 // 4 = 7: 28 used, 2 dropped",
    ),
    Broken(
        "lstm_output_tuple_into_linear",
        build_lstm_output_tuple,
        module="fc",
        fix_numbers=("2", "20"),
        words=("out, _ = self.lstm(x)", "(h_n, c_n)"),
        note="nn.LSTM returns (output, (h_n, c_n)): unpack before the Linear",
    ),
    Broken(
        "flatten_before_the_conv",
        build_flatten_before_conv,
        module="conv",
        fix_numbers=("3", "32", "3072"),
        op="conv2d",
        words=("flatten after the conv layers",),
        absent=("x.view(-1, 3, 32, 32)",),
        note="x.view(x.size(0), -1) before the conv: flatten after the convs instead",
    ),
    Broken(
        "batch_of_one_squeezed_away",
        build_squeezed_batch,
        module="bn",
        fix_numbers=("1",),
        words=("no squeeze at all gives (1, 1)", "squeeze()"),
        note="squeeze() turns (1, 1) into (): BatchNorm1d(1) takes the (1, 1)",
    ),
    Broken(
        "one_hot_targets_for_more_classes",
        build_one_hot_classes,
        module="",
        fix_numbers=("6", "4", "16"),
        op="cross_entropy",
        words=("classifier = nn.Linear(16, 6)", "argmax(1)"),
        note="one-hot targets over 6 classes, logits over 4",
    ),
    Broken(
        "padding_mask_without_head_dims",
        build_padding_mask_attention,
        module="",
        fix_numbers=("2", "6", "4"),
        words=("mask[:, None, None, :] gives (2, 1, 1, 6)",),
        note="a (B, T) mask against (B, H, T, T) scores: mask[:, None, None, :]",
    ),
    Broken(
        "regression_head_with_ten_outputs",
        build_wide_regressor,
        module="",
        fix_numbers=("32", "1", "4", "10"),
        op="mse_loss",
        words=("out = nn.Linear(32, 1)", "squeeze(-1)"),
        absent=("batch size",),
        note="(4, 10) predictions for (4,) targets: the head should give one value",
    ),
    Broken(
        "one_image_without_its_batch_dim",
        build_unbatched_image,
        module="fc",
        fix_numbers=("1", "3", "32"),
        words=("x.unsqueeze(0) gives (1, 3, 32, 32)", "no batch dim"),
        absent=("nn.Linear(256",),
        note="(3, 32, 32) into a CNN: conv runs unbatched, the head gets (8, 256)",
    ),
    Broken(
        "batch_hard_coded_in_a_view",
        build_hard_coded_batch,
        module="fc",
        fix_numbers=("8", "2704", "32"),
        op="linear",
        words=("x.view(x.size(0), -1) gives (8, 2704)",),
        absent=("nn.Linear(676",),
        note="x.view(32, -1) on a batch of 8: 32 rows of 676 for a layer built for 2704",
    ),
    Broken(
        "class_indices_as_floats",
        build_float_class_ids,
        module="",
        fix_numbers=("3",),
        op="cross_entropy",
        words=("target.long()",),
        note="cross_entropy with float class indices: .long()",
    ),
    Broken(
        "one_sample_without_batch_dim_into_softmax",
        build_unbatched_sample,
        module="",
        fix_numbers=("1", "4"),
        op="softmax",
        words=("x.unsqueeze(0) gives (1, 4)", "dim=-1"),
        note="(4,) into a head that takes softmax over dim 1",
    ),
    Broken(
        "raw_scores_into_bce",
        build_scores_into_bce,
        module="",
        fix_numbers=(),
        op="binary_cross_entropy",
        words=("BCEWithLogitsLoss", "torch.sigmoid"),
        note="binary_cross_entropy on a Linear's raw scores",
    ),
    Broken(
        "token_ids_with_a_trailing_one",
        build_trailing_one_ids,
        module="rnn",
        fix_numbers=("4", "9"),
        words=("ids.squeeze(-1) gives (4, 9)",),
        note="(4, 9, 1) ids: the embedding gives (4, 9, 1, 8), a 4-D input for the LSTM",
    ),
    Broken(
        "attention_keys_transposed_on_the_wrong_dims",
        build_keys_transposed_wrong,
        module="",
        fix_numbers=("2", "4", "8", "6"),
        words=("k.transpose(-2, -1) instead gives (2, 4, 8, 6)",),
        absent=("b.transpose(-2, -1)",),
        note="q @ k.transpose(1, 2) on 4-D keys: transpose(-2, -1)",
    ),
]
