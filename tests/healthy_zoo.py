"""Healthy models that no warning may fire on: random-init Hugging Face architectures built
from tiny configs, and awkward models of the kinds people really write.

Every model here is correct and freshly initialized the way its library (or PyTorch) does it.
What a warning family sees in them is what it sees in a healthy user model: 0.02-std inits,
zero-init layers and layer scales, position biases, zero queries by design, seq-first
recurrent layers, pairwise features, MoE routing. A warning on any of them is a false alarm.

`HF_ZOO` needs `transformers`; `hf_cases()` returns [] without it. Each entry builds a model
and its inputs, with `labels` for a training pass when the model takes them (`train_kwargs`).
Nothing is downloaded: configs only, weights from the library's own init.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Built = tuple[nn.Module, tuple[Any, ...], dict[str, Any]]

B, T = 2, 8  # batch and sequence length of every text input
VOCAB = 96


@dataclass(frozen=True)
class HFCase:
    """A random-config Hugging Face model: `build(seed)` -> (model, eval kwargs, train kwargs),
    weights and inputs drawn after `torch.manual_seed(seed)`."""

    name: str
    make: Callable[[], tuple[nn.Module, dict[str, Any], dict[str, Any]]]

    def build(self, seed: int = 0) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        torch.manual_seed(seed)
        return self.make()


@dataclass(frozen=True)
class Awkward:
    """An awkward healthy model: `build(seed)` -> (model, args, kwargs), drawn after
    `torch.manual_seed(seed)`; `loss(output, target)` is a scalar for the training pass."""

    name: str
    make: Callable[[], Built]
    loss: Callable[[Any, Any], torch.Tensor]
    note: str = ""

    def build(self, seed: int = 0) -> Built:
        torch.manual_seed(seed)
        return self.make()


def _ids(vocab: int = VOCAB, t: int = T) -> torch.Tensor:
    return torch.randint(3, vocab, (B, t))


# --------------------------------------------------------------------------------------------
# Hugging Face: tiny configs (hidden 32-64, 2 layers), weights from the library's init
# --------------------------------------------------------------------------------------------

TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64)  # fmt: skip
DECODER = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)  # fmt: skip


def _classifier(config_name: str, model_name: str, **config: Any) -> Callable[..., Any]:
    """A sequence classifier (labels: one class per sample)."""

    def build() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        import transformers

        cfg = getattr(transformers, config_name)(num_labels=3, **config)
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = 0
        model = getattr(transformers, model_name)(cfg)
        ids = _ids()
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return model, inputs, {**inputs, "labels": torch.tensor([0, 2])}

    return build


def _causal(config_name: str, model_name: str, **config: Any) -> Callable[..., Any]:
    """A causal LM (labels: the ids themselves)."""

    def build() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        import transformers

        model = getattr(transformers, model_name)(getattr(transformers, config_name)(**config))
        ids = _ids()
        return model, {"input_ids": ids}, {"input_ids": ids, "labels": ids}

    return build


def _seq2seq(config_name: str, model_name: str, **config: Any) -> Callable[..., Any]:
    def build() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        import transformers

        model = getattr(transformers, model_name)(getattr(transformers, config_name)(**config))
        ids, dec = _ids(), _ids(t=5)
        inputs = {"input_ids": ids, "decoder_input_ids": dec}
        return model, inputs, {"input_ids": ids, "labels": dec}

    return build


def _vision(config_name: str, model_name: str, size: int = 32, **config: Any):  # type: ignore[no-untyped-def]
    def build() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        import transformers

        cfg = getattr(transformers, config_name)(num_labels=3, **config)
        model = getattr(transformers, model_name)(cfg)
        pixels = torch.randn(B, 3, size, size)
        return model, {"pixel_values": pixels}, {
            "pixel_values": pixels, "labels": torch.tensor([1, 2])
        }  # fmt: skip

    return build


def _whisper() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    import transformers

    cfg = transformers.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=16, max_target_positions=32,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        suppress_tokens=[], begin_suppress_tokens=[],
    )  # fmt: skip
    model = transformers.WhisperForConditionalGeneration(cfg)
    features, dec = torch.randn(B, 16, 32), _ids(t=5)
    return model, {"input_features": features, "decoder_input_ids": dec}, {
        "input_features": features, "labels": dec
    }  # fmt: skip


def _wav2vec2() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    import transformers

    cfg = transformers.Wav2Vec2Config(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_labels=3,
        mask_time_prob=0.0,
    )  # fmt: skip
    model = transformers.Wav2Vec2ForSequenceClassification(cfg)
    audio = torch.randn(B, 800)
    return model, {"input_values": audio}, {"input_values": audio, "labels": torch.tensor([0, 1])}


def _clip() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    import transformers

    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64,
                         max_position_embeddings=32),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, image_size=32, patch_size=8),
        projection_dim=16,
    )  # fmt: skip
    model = transformers.CLIPModel(cfg)
    inputs = {"input_ids": _ids(), "pixel_values": torch.randn(B, 3, 32, 32)}
    return model, inputs, {**inputs, "return_loss": True}


def _t5() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    return _seq2seq(
        "T5Config", "T5ForConditionalGeneration", vocab_size=VOCAB, d_model=32, d_kv=8,
        d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0,
    )()  # fmt: skip


BART = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
            decoder_ffn_dim=64, max_position_embeddings=64)  # fmt: skip

HF_BUILDERS: dict[str, Callable[[], tuple[nn.Module, dict[str, Any], dict[str, Any]]]] = {
    "bert": _classifier("BertConfig", "BertForSequenceClassification", **TEXT),
    "roberta": _classifier("RobertaConfig", "RobertaForSequenceClassification", **TEXT),
    "distilbert": _classifier(
        "DistilBertConfig",
        "DistilBertForSequenceClassification",
        vocab_size=VOCAB,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
    ),
    "albert": _classifier(
        "AlbertConfig", "AlbertForSequenceClassification", embedding_size=16, **TEXT
    ),
    "electra": _classifier(
        "ElectraConfig", "ElectraForSequenceClassification", embedding_size=16, **TEXT
    ),
    "deberta-v2": _classifier("DebertaV2Config", "DebertaV2ForSequenceClassification", **TEXT),
    "gpt2": _causal(
        "GPT2Config",
        "GPT2LMHeadModel",
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
    ),
    "gpt-neo": _causal(
        "GPTNeoConfig",
        "GPTNeoForCausalLM",
        vocab_size=VOCAB,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        max_position_embeddings=64,
        window_size=4,
    ),
    "gpt-j": _causal(
        "GPTJConfig",
        "GPTJForCausalLM",
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        rotary_dim=4,
        n_positions=64,
    ),
    "opt": _causal(
        "OPTConfig",
        "OPTForCausalLM",
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        max_position_embeddings=64,
        word_embed_proj_dim=32,
    ),
    "bloom": _causal(
        "BloomConfig", "BloomForCausalLM", vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4
    ),
    "llama": _causal("LlamaConfig", "LlamaForCausalLM", **DECODER),
    "mistral": _causal("MistralConfig", "MistralForCausalLM", **DECODER),
    "qwen2": _causal("Qwen2Config", "Qwen2ForCausalLM", **DECODER),
    "phi": _causal("PhiConfig", "PhiForCausalLM", **DECODER),
    "gemma": _causal("GemmaConfig", "GemmaForCausalLM", head_dim=8, **DECODER),
    "falcon": _causal(
        "FalconConfig",
        "FalconForCausalLM",
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
    ),
    "mixtral": _causal(
        "MixtralConfig",
        "MixtralForCausalLM",
        num_local_experts=4,
        num_experts_per_tok=2,
        **DECODER,
    ),
    "qwen2-moe": _causal(
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        **DECODER,
    ),
    "t5": _t5,
    "bart": _seq2seq("BartConfig", "BartForConditionalGeneration", **BART),
    "pegasus": _seq2seq("PegasusConfig", "PegasusForConditionalGeneration", **BART),
    "whisper": _whisper,
    "vit": _vision(
        "ViTConfig",
        "ViTForImageClassification",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    ),
    "deit": _vision(
        "DeiTConfig",
        "DeiTForImageClassification",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    ),
    "swin": _vision(
        "SwinConfig",
        "SwinForImageClassification",
        image_size=32,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 2],
        window_size=4,
    ),
    "convnext": _vision(
        "ConvNextConfig",
        "ConvNextForImageClassification",
        hidden_sizes=[16, 32],
        depths=[1, 1],
        num_stages=2,
    ),
    "resnet": _vision(
        "ResNetConfig",
        "ResNetForImageClassification",
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        layer_type="basic",
    ),
    "mobilenet-v2": _vision(
        "MobileNetV2Config",
        "MobileNetV2ForImageClassification",
        image_size=32,
        depth_multiplier=0.25,
    ),
    "wav2vec2": _wav2vec2,
    "clip": _clip,
}


def hf_cases() -> list[HFCase]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return []
    return [HFCase(name, build) for name, build in HF_BUILDERS.items()]


# --------------------------------------------------------------------------------------------
# Awkward healthy models: what a warning family sees in real user code
# --------------------------------------------------------------------------------------------


def _ce(target: torch.Tensor) -> Callable[[Any, Any], torch.Tensor]:
    return lambda out, _: F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))


def _mse(out: Any, _: Any) -> torch.Tensor:
    return out.float().pow(2).mean()


class SeqFirstTagger(nn.Module):
    """One long sequence, seq-first (seq=100, batch=1): a tag per step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # (100, 1, 16)
        return self.head(out).squeeze(1)  # (100, 5)


class SeqFirstLast(nn.Module):
    """Seq-first GRU fed (seq, batch, feat); the last step `output[-1]` classifies."""

    def __init__(self, cell: type[nn.Module] = nn.GRU) -> None:
        super().__init__()
        self.rnn = cell(6, 12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[-1])


class SeqFirstHidden(nn.Module):
    """Seq-first RNN stack; the last layer's final hidden state `h_n[-1]` classifies."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(6, 12, num_layers=2)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        return self.fc(h[-1])


class TransposedLSTM(nn.Module):
    """Batch-first data, a seq-first LSTM: transposed in, transposed back out."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.transpose(0, 1))
        return self.fc(out.transpose(0, 1))  # (B, T, 4)


class RawFeatureLSTM(nn.Module):
    """Default-init LSTM on unnormalized sensor values (RMS about 20): tanh bounds its output."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 32, batch_first=True)
        self.fc = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class PairwiseEdges(nn.Module):
    """Edge features h_i + h_j on (B, N, N, F) through an MLP: a Linear on a 4-d tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.node = nn.Linear(5, 16)
        self.act = nn.ReLU()
        self.edge = nn.Linear(16, 16)
        self.score = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.node(x)  # (B, N, 16)
        pair = self.act(h[:, :, None] + h[:, None, :])  # (B, N, N, 16)
        return self.score(self.act(self.edge(pair))).squeeze(-1)  # (B, N, N)


class PairwiseConcat(nn.Module):
    """cat([h_i, h_j]) pair features, then a Linear per pair (interaction networks)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.pair = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        n = h.shape[1]
        pair = torch.cat(
            [h[:, :, None].expand(-1, -1, n, -1), h[:, None].expand(-1, n, -1, -1)], dim=-1
        )
        return self.pair(pair)  # (B, N, N, 2)


class ChannelsLastConv(nn.Module):
    """ConvNeXt-style: a depthwise conv, permute to channels-last, Linear over channels."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
        self.pw = nn.Linear(16, 32)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(32, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(self.act(self.pw(y))).permute(0, 3, 1, 2)
        return self.head((x + y).mean((2, 3)))


class ZeroInitResidual(nn.Module):
    """Residual MLP whose branches end in a zero-initialized Linear (Fixup, ReZero style)."""

    def __init__(self, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(10, width)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            block = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            nn.init.zeros_(block[2].weight)
            nn.init.zeros_(block[2].bias)
            self.blocks.append(block)
        self.out = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class LayerScaleBlock(nn.Module):
    """Pre-norm transformer blocks with LayerScale gammas at 1e-5 (CaiT, ConvNeXt)."""

    def __init__(self, dim: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2 * depth))
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, 4, batch_first=True)
                                  for _ in range(depth))  # fmt: skip
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            for _ in range(depth)
        )
        self.gammas = nn.ParameterList(
            nn.Parameter(1e-5 * torch.ones(dim)) for _ in range(2 * depth)
        )
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (attn, mlp) in enumerate(zip(self.attn, self.mlp, strict=True)):
            h = self.norms[2 * i](x)
            x = x + self.gammas[2 * i] * attn(h, h, h, need_weights=False)[0]
            x = x + self.gammas[2 * i + 1] * mlp(self.norms[2 * i + 1](x))
        return self.head(x.mean(1))


class TiedLM(nn.Module):
    """Embedding and output projection share one weight; small 0.02-std init."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.block = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(32)
        self.lm_head = nn.Linear(32, VOCAB, bias=False)
        self.lm_head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(self.block(self.emb(ids))))


class TopOneMoE(nn.Module):
    """Switch-style routing: a small-init router, top-1 expert per token, weighted by prob."""

    def __init__(self, dim: int = 16, experts: int = 4) -> None:
        super().__init__()
        self.router = nn.Linear(dim, experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.001)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim)) for _ in range(experts)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])
        probs = self.router(tokens).softmax(-1)
        weight, choice = probs.max(-1)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            mask = choice == e
            if mask.any():
                out[mask] = weight[mask, None] * expert(tokens[mask])
        h = self.norm(tokens + out).reshape(x.shape)
        return self.head(h.mean(1))


class RelativeBias(nn.Module):
    """A learned relative position bias table, zero at init (T5, Swin)."""

    def __init__(self, heads: int, length: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(2 * length - 1, heads))
        pos = torch.arange(length)
        self.register_buffer("index", pos[:, None] - pos[None, :] + length - 1)

    def forward(self) -> torch.Tensor:
        return self.table[self.index].permute(2, 0, 1)  # (heads, T, T)


class BiasedAttention(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4, length: int = T) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.bias = RelativeBias(heads, length)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads) + self.bias()
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.head(self.norm(x + self.proj(y)))


class LearnedQueries(nn.Module):
    """DETR-style decoder queries: a zero-initialized query embedding by design."""

    def __init__(self, dim: int = 32, queries: int = 6) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), nn.ReLU())
        self.query = nn.Embedding(queries, dim)
        nn.init.zeros_(self.query.weight)
        self.pos = nn.Embedding(queries, dim)
        self.decoder = nn.TransformerDecoderLayer(dim, 4, 64, batch_first=True)
        self.cls = nn.Linear(dim, 5)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        memory = self.backbone(img).flatten(2).transpose(1, 2)
        idx = torch.arange(self.query.num_embeddings)
        tgt = (self.query(idx) + self.pos(idx)).expand(img.shape[0], -1, -1)
        return self.cls(self.decoder(tgt, memory))


class SmallHead(nn.Module):
    """A regression head initialized small (std 1e-3): near-zero predictions at init."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 1)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ResidualTower(nn.Module):
    """Twelve pre-norm residual MLP blocks with branches scaled by 1/sqrt(depth)."""

    def __init__(self, width: int = 32, depth: int = 12) -> None:
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                          nn.Linear(2 * width, width))
            for _ in range(depth)
        )  # fmt: skip
        for block in self.blocks:
            nn.init.normal_(block[3].weight, std=0.02 / math.sqrt(2 * depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def _deep_mlp(depth: int = 8, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(20, 64), act()]
    for _ in range(depth - 2):
        layers += [nn.Linear(64, 64), act()]
    return nn.Sequential(*layers, nn.Linear(64, 4))


def _xavier_tanh() -> nn.Module:
    model = _deep_mlp(6, nn.Tanh)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    return model


def _plain_cnn() -> nn.Module:
    """VGG-like, default init, no normalization: 8 convs."""
    layers: list[nn.Module] = []
    c = 3
    for i, w in enumerate((16, 16, 32, 32, 32, 64, 64, 64)):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


class ZeroGammaBlock(nn.Module):
    """ResNet basic block whose last BatchNorm starts at gamma=0 (zero_init_residual)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class ZeroGammaResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())  # fmt: skip
        self.blocks = nn.Sequential(ZeroGammaBlock(16), ZeroGammaBlock(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class ZeroOutputUNet(nn.Module):
    """Diffusion-style: GroupNorm convs, a timestep embedding, the output conv zero-init."""

    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 32))
        self.inp = nn.Conv2d(3, 32, 3, padding=1)
        self.down = nn.Sequential(nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 32, 3, 2, 1))
        self.up = nn.Sequential(nn.GroupNorm(8, 32), nn.SiLU(), nn.Upsample(scale_factor=2),
                                nn.Conv2d(32, 32, 3, padding=1))  # fmt: skip
        self.out = nn.Sequential(nn.GroupNorm(8, 32), nn.SiLU(), nn.Conv2d(32, 3, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(-math.log(1e4) * torch.arange(8) / 8)
        emb = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], -1)
        h = self.inp(x) + self.time(emb)[:, :, None, None]
        return self.out(self.up(self.down(h)) + h)


class HandRNN(nn.Module):
    """An Elman RNN written by hand: the hidden Linear (no bias) first sees a zero state."""

    def __init__(self) -> None:
        super().__init__()
        self.ih = nn.Linear(6, 16)
        self.hh = nn.Linear(16, 16, bias=False)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 16)
        for step in range(x.shape[1]):
            h = torch.tanh(self.ih(x[:, step]) + self.hh(h))
        return self.out(h)


class LoRALinear(nn.Module):
    """A frozen base Linear plus a low-rank update whose B starts at zero."""

    def __init__(self, d_in: int, d_out: int, rank: int = 4) -> None:
        super().__init__()
        self.base = nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)
        self.lora_a = nn.Linear(d_in, rank, bias=False)
        self.lora_b = nn.Linear(rank, d_out, bias=False)
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + 2.0 * self.lora_b(self.lora_a(x))


class LoRAMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = LoRALinear(24, 64)
        self.act = nn.GELU()
        self.l2 = LoRALinear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.act(self.l1(x)))


class GatedMLP(nn.Module):
    """SwiGLU MLP blocks with RMSNorm, a 0.02-std init in a narrow width (Llama style)."""

    def __init__(self, dim: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.norms = nn.ModuleList(nn.RMSNorm(dim) for _ in range(depth))
        self.gate = nn.ModuleList(nn.Linear(dim, 32, bias=False) for _ in range(depth))
        self.up = nn.ModuleList(nn.Linear(dim, 32, bias=False) for _ in range(depth))
        self.down = nn.ModuleList(nn.Linear(32, dim, bias=False) for _ in range(depth))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        self.final = nn.RMSNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        nn.init.normal_(self.head.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        for norm, gate, up, down in zip(self.norms, self.gate, self.up, self.down, strict=True):
            x = norm(h)
            h = h + down(F.silu(gate(x)) * up(x))
        return self.head(self.final(h))


class CausalMaskModule(nn.Module):
    """A module that returns an additive -inf causal mask; softmax turns it into zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        return torch.full((t, t), float("-inf")).triu(1)


class MaskedAttentionLM(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.mask = CausalMaskModule()
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        a, _ = self.attn(h, h, h, attn_mask=self.mask(h), need_weights=False)
        return self.head(self.norm(h + a))


class SigmoidGate(nn.Module):
    """Squeeze-excitation gates and a sigmoid attention over a small CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.se = nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 32), nn.Sigmoid())
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        g = self.se(h.mean((2, 3)))[:, :, None, None]
        return self.fc((h * g).mean((2, 3)))


class Conv1dAudio(nn.Module):
    """1-d conv stack over raw audio (unnormalized, RMS about 0.1), then a GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, 16, 10, stride=5), nn.GELU(), nn.Conv1d(16, 16, 3, stride=2), nn.GELU()
        )
        self.gru = nn.GRU(16, 24, batch_first=True)
        self.fc = nn.Linear(24, 6)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = self.convs(wav[:, None]).transpose(1, 2)
        out, _ = self.gru(h)
        return self.fc(out.mean(1))


class Siamese(nn.Module):
    """One encoder applied to two inputs; cosine similarity of the embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(self.enc(a), self.enc(b))


class GraphConv(nn.Module):
    """A GCN on a dense normalized adjacency: (B, N, N) @ (B, N, F) then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(6, 16)
        self.l2 = nn.Linear(16, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        deg = adj.sum(-1, keepdim=True).clamp(min=1)
        a = adj / deg
        h = F.relu(self.l1(a @ x))
        h = F.relu(self.l2(a @ h))
        return self.out(h.mean(1))


class VideoFrames(nn.Module):
    """(B, T, C, H, W) frames folded into the batch for a 2-d CNN and unfolded after."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.temporal = nn.GRU(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        b, t = v.shape[:2]
        f = self.cnn(v.flatten(0, 1)).view(b, t, -1)
        out, _ = self.temporal(f)
        return self.fc(out[:, -1])


class PatchMixer(nn.Module):
    """MLP-Mixer: token mixing with a Linear over the patch axis (transposed in and out)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.norm1 = nn.LayerNorm(16)
        self.token = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.norm2 = nn.LayerNorm(16)
        self.channel = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2)  # (B, 16 patches, 16)
        h = h + self.token(self.norm1(h).transpose(1, 2)).transpose(1, 2)
        h = h + self.channel(self.norm2(h))
        return self.head(h.mean(1))


class SeqFirstTransformer(nn.Module):
    """nn.TransformerEncoder with the default batch_first=False, fed (T, B, D); pooled over T."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(32, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.emb(ids))  # ids (T, B)
        return self.fc(h.mean(0))


def _seq(t: int, b: int, f: int) -> torch.Tensor:
    return torch.randn(t, b, f)


def _build(make: Callable[[], nn.Module], *args: Any, **kwargs: Any) -> Callable[[], Built]:
    def build() -> Built:
        return make(), tuple(a() if callable(a) else a for a in args), kwargs

    return build


_TARGETS = torch.Generator().manual_seed(1)  # targets made at import leave the global RNG alone


def _labels(high: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=_TARGETS)


def _adjacency() -> torch.Tensor:
    a = (torch.rand(B, 7, 7) > 0.6).float()
    return ((a + a.transpose(1, 2) + torch.eye(7)) > 0).float()


AWKWARD: list[Awkward] = [
    Awkward("seq_first_lstm_batch_1", _build(SeqFirstTagger, lambda: _seq(100, 1, 8)),
            _ce(_labels(5, 100)), "seq=100, batch=1, a tag per step"),
    Awkward("seq_first_gru_last_step", _build(SeqFirstLast, lambda: _seq(9, 4, 6)),
            _ce(torch.tensor([0, 1, 2, 0])), "output[-1] of a (seq, batch, feat) GRU"),
    Awkward("seq_first_lstm_last_step", _build(lambda: SeqFirstLast(nn.LSTM),
                                               lambda: _seq(9, 4, 6)),
            _ce(torch.tensor([0, 1, 2, 0]))),
    Awkward("seq_first_rnn_hidden", _build(SeqFirstHidden, lambda: _seq(12, 3, 6)),
            _ce(torch.tensor([0, 1, 2]))),
    Awkward("transposed_lstm", _build(TransposedLSTM, lambda: torch.randn(3, 10, 8)), _mse),
    Awkward("raw_feature_lstm", _build(RawFeatureLSTM, lambda: 20 * torch.randn(4, 30, 4)), _mse,
            "default init, inputs with RMS 20"),
    Awkward("pairwise_edges", _build(PairwiseEdges, lambda: torch.randn(B, 6, 5)), _mse),
    Awkward("pairwise_concat", _build(PairwiseConcat, lambda: torch.randn(B, 5, 4)), _mse),
    Awkward("channels_last_conv", _build(ChannelsLastConv, lambda: torch.randn(B, 16, 8, 8)),
            _ce(torch.tensor([0, 2]))),
    Awkward("zero_init_residual", _build(ZeroInitResidual, lambda: torch.randn(4, 10)),
            _ce(torch.tensor([0, 1, 2, 0]))),
    Awkward("layer_scale", _build(LayerScaleBlock, lambda: torch.randn(B, 6, 32)),
            _ce(torch.tensor([1, 4]))),
    Awkward("tied_lm", _build(TiedLM, lambda: _ids()), _ce(_labels(VOCAB, B, T))),
    Awkward("top1_moe", _build(TopOneMoE, lambda: torch.randn(B, 6, 16)),
            _ce(torch.tensor([0, 2]))),
    Awkward("relative_position_bias", _build(BiasedAttention, lambda: torch.randn(B, T, 32)),
            _mse),
    Awkward("zero_learned_queries", _build(LearnedQueries, lambda: torch.randn(B, 3, 16, 16)),
            _mse),
    Awkward("small_regression_head", _build(SmallHead, lambda: torch.randn(8, 12)), _mse),
    Awkward("residual_tower", _build(ResidualTower, lambda: torch.randn(8, 8)),
            _ce(_labels(2, 8))),
    Awkward("deep_relu_mlp_default_init", _build(_deep_mlp, lambda: torch.randn(16, 20)),
            _ce(_labels(4, 16))),
    Awkward("deep_tanh_mlp_xavier", _build(_xavier_tanh, lambda: torch.randn(16, 20)),
            _ce(_labels(4, 16))),
    Awkward("plain_cnn_default_init", _build(_plain_cnn, lambda: torch.randn(B, 3, 32, 32)),
            _ce(torch.tensor([3, 7]))),
    Awkward("zero_gamma_resnet", _build(ZeroGammaResNet, lambda: torch.randn(4, 3, 12, 12)),
            _ce(torch.tensor([0, 1, 2, 3]))),
    Awkward("zero_output_unet",
            _build(ZeroOutputUNet, lambda: torch.randn(B, 3, 16, 16),
                   lambda: torch.tensor([10.0, 500.0])), _mse,
            "the output conv is zero at init, as in diffusion models"),
    Awkward("hand_written_rnn", _build(HandRNN, lambda: torch.randn(4, 7, 6)),
            _ce(torch.tensor([0, 1, 2, 0]))),
    Awkward("lora_mlp", _build(LoRAMLP, lambda: torch.randn(8, 24)), _mse),
    Awkward("swiglu_rmsnorm", _build(GatedMLP, lambda: _ids()), _ce(_labels(VOCAB, B, T))),
    Awkward("inf_causal_mask", _build(MaskedAttentionLM, lambda: _ids()), _ce(_labels(VOCAB, B, T)),
            "a -inf additive mask, finite after softmax"),
    Awkward("squeeze_excitation", _build(SigmoidGate, lambda: torch.randn(4, 3, 8, 8)),
            _ce(torch.tensor([0, 1, 2, 3]))),
    Awkward("conv1d_audio_gru", _build(Conv1dAudio, lambda: 0.1 * torch.randn(B, 400)),
            _ce(torch.tensor([0, 5]))),
    Awkward("siamese", _build(Siamese, lambda: torch.randn(6, 10), lambda: torch.randn(6, 10)),
            _mse),
    Awkward("dense_gcn", _build(GraphConv, lambda: torch.randn(B, 7, 6), _adjacency), _mse),
    Awkward("video_frames_folded", _build(VideoFrames, lambda: torch.randn(B, 5, 3, 8, 8)),
            _ce(torch.tensor([0, 3]))),
    Awkward("mlp_mixer", _build(PatchMixer, lambda: torch.randn(B, 3, 16, 16)),
            _ce(torch.tensor([0, 9]))),
    Awkward("seq_first_transformer", _build(SeqFirstTransformer, lambda: _ids(t=4).T), _mse,
            "(T, B) ids, batch_first=False everywhere"),
]  # fmt: skip
