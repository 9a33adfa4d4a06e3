"""Planted bugs in Hugging Face models built from small random configs (nothing downloaded).

The models are the library's own; the bug is in what the user feeds them, so each case names
the input at fault (``words``) and the numbers of its fix. The ``BUG`` marker sits on the line
that builds the wrong input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.broken_models import Broken


def _quiet() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()


def _bert(cls_name: str = "BertModel", **over: Any) -> nn.Module:
    import transformers

    _quiet()
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        type_vocab_size=2,
        **over,
    )
    torch.manual_seed(0)
    return getattr(transformers, cls_name)(config).eval()


def _gpt2() -> nn.Module:
    import transformers

    _quiet()
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=16)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


def _vit() -> nn.Module:
    import transformers

    _quiet()
    options: dict[str, Any] = {
        "image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
        "num_labels": 5,
    }  # fmt: skip
    config = transformers.ViTConfig(**options)
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()


def _ids(*shape: int, high: int = 100) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randint(0, high, shape)


def build_bert_too_long():
    ids = _ids(2, 20)  # BUG
    return _bert(), (), {"input_ids": ids}


def build_bert_token_type_2():
    ids = _ids(2, 12)
    token_type_ids = torch.tensor([[0] * 4 + [1] * 4 + [2] * 4] * 2)  # BUG
    return _bert(), (), {"input_ids": ids, "token_type_ids": token_type_ids}


def build_bert_added_tokens():
    ids = _ids(2, 12)
    ids[:, 5] = torch.tensor([100, 102])  # BUG
    return _bert(), (), {"input_ids": ids}


def build_bert_mlm_short_labels():
    ids = _ids(2, 12)
    return _bert("BertForMaskedLM"), (), {"input_ids": ids, "labels": ids[:, :-1]}  # BUG


def build_bert_cls_labels_batch():
    ids = _ids(2, 12)
    labels = torch.tensor([0, 1, 1, 0])  # BUG
    return _bert("BertForSequenceClassification"), (), {"input_ids": ids, "labels": labels}


def build_bert_mask_length():
    ids = _ids(2, 12)
    mask = torch.ones(2, 10, dtype=torch.long)  # BUG
    return _bert(), (), {"input_ids": ids, "attention_mask": mask}


def build_bert_mask_batch():
    ids = _ids(2, 12)
    mask = torch.ones(4, 12, dtype=torch.long)  # BUG
    return _bert(), (), {"input_ids": ids, "attention_mask": mask}


def build_gpt2_too_long():
    ids = _ids(2, 20)  # BUG
    return _gpt2(), (), {"input_ids": ids}


def build_gpt2_added_tokens():
    ids = _ids(2, 8)
    ids[0, -1] = 104  # BUG
    return _gpt2(), (), {"input_ids": ids}


def build_gpt2_labels_beyond_vocab():
    ids = _ids(2, 8)
    labels = ids.clone()
    labels[1, 3] = 150  # BUG
    return _gpt2(), (), {"input_ids": ids, "labels": labels}


def build_bert_float_labels_column():
    ids = _ids(2, 8)
    labels = torch.tensor([[1.0], [2.0]])  # BUG
    model = _bert("BertForSequenceClassification", num_labels=3)
    return model, (), {"input_ids": ids, "labels": labels}


def build_bert_ids_and_embeds():
    ids = _ids(2, 8)
    embeds = torch.randn(2, 8, 32)  # BUG
    return _bert(), (), {"input_ids": ids, "inputs_embeds": embeds}


def build_t5_without_decoder_inputs():
    import transformers

    _quiet()
    options: dict[str, Any] = {
        "vocab_size": 100, "d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 1,
        "num_heads": 2, "decoder_start_token_id": 0,
    }  # fmt: skip
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**options)).eval()
    return model, (), {"input_ids": _ids(2, 8)}  # BUG


def build_gpt2_short_labels():
    ids = _ids(2, 12)
    return _gpt2(), (), {"input_ids": ids, "labels": ids[:, :10]}  # BUG


def build_t5_added_tokens():
    import transformers

    _quiet()
    options: dict[str, Any] = {
        "vocab_size": 100, "d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 1,
        "num_heads": 2, "decoder_start_token_id": 0,
    }  # fmt: skip
    config = transformers.T5Config(**options)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    ids = _ids(2, 8)
    ids[1, 2] = 110  # BUG
    return model, (), {"input_ids": ids, "labels": _ids(2, 5)}


def build_vit_gray():
    pixels = torch.rand(2, 1, 32, 32)  # BUG
    return _vit(), (), {"pixel_values": pixels}


def build_vit_rgba():
    pixels = torch.rand(2, 4, 32, 32)  # BUG
    return _vit(), (), {"pixel_values": pixels}


def build_vit_channels_last():
    pixels = torch.rand(2, 32, 32, 3)  # BUG
    return _vit(), (), {"pixel_values": pixels}


def build_vit_image_size():
    pixels = torch.rand(2, 3, 64, 64)  # BUG
    return _vit(), (), {"pixel_values": pixels}


def build_whisper_mels():
    import transformers

    _quiet()
    config = transformers.WhisperConfig(
        vocab_size=100, num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=16, max_target_positions=16, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.WhisperModel(config).eval()
    features = torch.randn(2, 128, 32)  # BUG
    return model, (), {"input_features": features, "decoder_input_ids": torch.tensor([[1, 5]] * 2)}


def build_whisper_frames():
    model, _, inputs = build_whisper_mels()
    inputs["input_features"] = torch.randn(2, 80, 40)  # BUG
    return model, (), inputs


def build_roberta_too_long():
    import transformers

    _quiet()
    config = transformers.RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=18, pad_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.RobertaModel(config).eval()
    ids = _ids(2, 17, high=97) + 3  # BUG
    return model, (), {"input_ids": ids}


def _wav2vec2() -> nn.Module:
    import transformers

    _quiet()
    options: dict[str, Any] = {
        "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "conv_dim": (16, 16), "conv_stride": (5, 2),
        "conv_kernel": (10, 3), "num_feat_extract_layers": 2, "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }  # fmt: skip
    torch.manual_seed(0)
    return transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**options)).eval()


def build_wav2vec2_channel_dim():
    audio = torch.randn(2, 1, 1600)  # BUG
    return _wav2vec2(), (), {"input_values": audio}


def build_wav2vec2_stereo():
    audio = torch.randn(2, 1600, 2)  # BUG
    return _wav2vec2(), (), {"input_values": audio}


def build_distilbert_too_long():
    import transformers

    _quiet()
    config = transformers.DistilBertConfig(
        vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=16
    )
    torch.manual_seed(0)
    ids = _ids(2, 20)  # BUG
    return transformers.DistilBertModel(config).eval(), (), {"input_ids": ids}


def build_t5_mask_length():
    model, _, inputs = build_t5_added_tokens()
    inputs["input_ids"] = _ids(2, 8)
    inputs["attention_mask"] = torch.ones(2, 6, dtype=torch.long)  # BUG
    return model, (), inputs


def build_gpt2_given_positions():
    ids = _ids(2, 12)
    positions = torch.arange(10, 22).expand(2, -1)  # BUG
    return _gpt2(), (), {"input_ids": ids, "position_ids": positions}


class BertTagger(nn.Module):
    """A token-classification head on BERT, sized for bert-base's 768."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = _bert()
        self.head = nn.Linear(768, 5)

    def forward(self, input_ids):
        hidden = self.bert(input_ids=input_ids).last_hidden_state
        return self.head(hidden)  # BUG


def build_bert_tagger():
    return BertTagger(), (_ids(2, 12),), {}


class BertPooledClassifier(nn.Module):
    """A classifier on BERT's pooled output, sized for bert-base's 768."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = _bert()
        self.classifier = nn.Linear(768, 3)

    def forward(self, input_ids):
        pooled = self.bert(input_ids=input_ids).pooler_output
        return self.classifier(pooled)  # BUG


def build_bert_pooled():
    return BertPooledClassifier(), (_ids(2, 12),), {}


def build_gpt2_seq_first():
    ids = _ids(12, 2)  # BUG
    return _gpt2(), (), {"input_ids": ids, "attention_mask": torch.ones(2, 12, dtype=torch.long)}


HF: list[Broken] = [
    Broken(
        "hf_bert_sequence_too_long",
        build_bert_too_long,
        module="embeddings",
        fix_numbers=("20", "16"),
        words=("max_position_embeddings", "input_ids"),
        absent=("vocabulary",),
        note="20 tokens into a model with 16 positions: truncate to 16",
    ),
    Broken(
        "hf_bert_token_type_2",
        build_bert_token_type_2,
        module="embeddings.token_type_embeddings",
        fix_numbers=("2",),
        op="embedding",
        words=("token_type_ids", "type_vocab_size"),
        absent=("nn.Embedding(3",),
        note="token_type_ids hold 2 with type_vocab_size=2",
    ),
    Broken(
        "hf_bert_tokens_added_without_resize",
        build_bert_added_tokens,
        module="embeddings.word_embeddings",
        fix_numbers=("103",),
        op="embedding",
        words=("resize_token_embeddings", "vocab_size"),
        absent=("nn.Embedding(",),
        note="ids 100 and 102 beyond vocab_size=100: model.resize_token_embeddings(103)",
    ),
    Broken(
        "hf_bert_mlm_labels_shorter",
        build_bert_mlm_short_labels,
        module="",
        fix_numbers=("11", "12"),
        words=("labels", "input_ids"),
        note="labels (2, 11) for input_ids (2, 12)",
    ),
    Broken(
        "hf_bert_cls_labels_batch",
        build_bert_cls_labels_batch,
        module="",
        fix_numbers=("4", "2"),
        words=("labels",),
        note="4 labels for a batch of 2",
    ),
    Broken(
        "hf_bert_attention_mask_length",
        build_bert_mask_length,
        module="",
        fix_numbers=("10", "12"),
        kind="warning",
        words=("attention_mask", "input_ids"),
        note="the mask covers 10 of 12 tokens; the library runs on without a word",
    ),
    Broken(
        "hf_bert_attention_mask_batch",
        build_bert_mask_batch,
        module="",
        fix_numbers=("4", "2"),
        kind="warning",
        words=("attention_mask", "input_ids"),
        note="a mask for 4 sequences with 2 input_ids",
    ),
    Broken(
        "hf_gpt2_sequence_too_long",
        build_gpt2_too_long,
        module="transformer.wpe",
        fix_numbers=("20", "16"),
        op="embedding",
        words=("max_position_embeddings", "sequence length"),
        absent=("vocabulary", "nn.Embedding("),
        note="position ids 0..19 into 16 positions",
    ),
    Broken(
        "hf_gpt2_tokens_added_without_resize",
        build_gpt2_added_tokens,
        module="transformer.wte",
        fix_numbers=("105",),
        op="embedding",
        words=("resize_token_embeddings",),
        absent=("nn.Embedding(",),
        note="id 104 with vocab_size=100",
    ),
    Broken(
        "hf_gpt2_labels_shorter",
        build_gpt2_short_labels,
        module="",
        fix_numbers=("10", "12"),
        words=("labels", "input_ids"),
        note="labels (2, 10) for input_ids (2, 12)",
    ),
    Broken(
        "hf_t5_tokens_added_without_resize",
        build_t5_added_tokens,
        module="encoder.embed_tokens",
        fix_numbers=("111",),
        op="embedding",
        words=("resize_token_embeddings",),
        absent=("nn.Embedding(",),
        note="id 110 with vocab_size=100",
    ),
    Broken(
        "hf_vit_grayscale",
        build_vit_gray,
        module="vit.embeddings.patch_embeddings",
        fix_numbers=("3", "1"),
        words=("num_channels", "pixel_values", "repeat(1, 3, 1, 1)"),
        note="1-channel pixel_values into num_channels=3",
    ),
    Broken(
        "hf_vit_rgba",
        build_vit_rgba,
        module="vit.embeddings.patch_embeddings",
        fix_numbers=("3", "4"),
        words=("num_channels", "pixel_values", "[:, :3]"),
        note="RGBA pixel_values: drop alpha",
    ),
    Broken(
        "hf_vit_channels_last",
        build_vit_channels_last,
        module="vit.embeddings.patch_embeddings",
        fix_numbers=("3",),
        words=("pixel_values", "permute(0, 3, 1, 2)"),
        note="(N, H, W, C) pixel_values",
    ),
    Broken(
        "hf_vit_image_size",
        build_vit_image_size,
        module="vit.embeddings",
        fix_numbers=("64", "32"),
        words=("image_size", "pixel_values"),
        note="64x64 images into a model configured for 32",
    ),
    Broken(
        "hf_whisper_mel_bins",
        build_whisper_mels,
        module="encoder.conv1",
        fix_numbers=("128", "80"),
        op="conv1d",
        words=("num_mel_bins", "input_features"),
        absent=("Conv1d(128",),
        note="128-mel features into an 80-mel model (large-v3 features into a base config)",
    ),
    Broken(
        "hf_whisper_frames_not_padded",
        build_whisper_frames,
        module="encoder",
        fix_numbers=("40", "32"),
        words=("input_features", "(2, 80, 32)"),
        note="the library's own ValueError: 40 frames where the config gives 32",
    ),
    Broken(
        "hf_gpt2_seq_first_input_ids",
        build_gpt2_seq_first,
        module="",
        fix_numbers=("12", "2"),
        kind="warning",
        words=("input_ids.T", "seq-first"),
        note="input_ids (12, 2) with attention_mask (2, 12): the ids are (seq, batch)",
    ),
    Broken(
        "hf_roberta_positions_offset",
        build_roberta_too_long,
        module="embeddings",
        fix_numbers=("17", "16", "18"),
        words=("input_ids", "max_position_embeddings", "start at 2"),
        note="RoBERTa counts positions from padding_idx + 1: 18 rows hold 16 tokens",
    ),
    Broken(
        "hf_wav2vec2_extra_channel_dim",
        build_wav2vec2_channel_dim,
        module="feature_extractor.conv_layers.0.conv",
        fix_numbers=("2", "1600"),
        op="conv1d",
        words=("input_values.squeeze(1)",),
        note="raw audio is (batch, samples): the model adds the channel dim itself",
    ),
    Broken(
        "hf_wav2vec2_stereo",
        build_wav2vec2_stereo,
        module="feature_extractor.conv_layers.0.conv",
        fix_numbers=("2", "1600"),
        op="conv1d",
        words=("input_values.mean(-1)",),
        note="stereo audio: mix down to mono",
    ),
    Broken(
        "hf_distilbert_sequence_too_long",
        build_distilbert_too_long,
        module="embeddings",
        fix_numbers=("20", "16"),
        op="add",
        words=("input_ids", "max_position_embeddings"),
        note="the overrun raises in an add of the position table, not in an embedding",
    ),
    Broken(
        "hf_t5_attention_mask_length",
        build_t5_mask_length,
        module="",
        fix_numbers=("6", "8"),
        kind="warning",
        words=("attention_mask", "input_ids"),
        note="a mask for 6 of the 8 tokens",
    ),
    Broken(
        "hf_gpt2_position_ids_given_past_table",
        build_gpt2_given_positions,
        module="transformer.wpe",
        fix_numbers=("21", "16", "12"),
        op="embedding",
        words=("position_ids", "torch.arange(12)"),
        absent=("vocabulary", "resize_token_embeddings"),
        note="the caller's position_ids start at 10: 12 tokens run past 16 positions",
    ),
    Broken(
        "hf_bert_token_head_sized_for_base",
        build_bert_tagger,
        module="head",
        fix_numbers=("32", "5"),
        op="linear",
        words=("config.hidden_size",),
        absent=("flatten",),
        note="a per-token head on a 32-wide BERT: nn.Linear(32, 5), from bert's config",
    ),
    Broken(
        "hf_bert_pooled_head_sized_for_base",
        build_bert_pooled,
        module="classifier",
        fix_numbers=("32", "3"),
        op="linear",
        words=("config.hidden_size",),
        note="the pooled output has config.hidden_size=32 features",
    ),
    Broken(
        "hf_gpt2_labels_beyond_vocab",
        build_gpt2_labels_beyond_vocab,
        module="",
        fix_numbers=("150", "100"),
        op="cross_entropy",
        words=("labels holds class 150", "config.vocab_size=100", "-100"),
        absent=("the last layer must output",),
        note="a label id past the vocabulary: the labels are wrong, not the LM head",
    ),
    Broken(
        "hf_bert_classifier_float_label_column",
        build_bert_float_labels_column,
        module="",
        fix_numbers=("2", "3"),
        words=("labels.squeeze(1).long() gives (2,)", "multi-label"),
        absent=("one entry per token",),
        note="float labels (2, 1) for 3 classes: class indices (2,), not a token axis",
    ),
    Broken(
        "hf_bert_ids_and_embeds_both",
        build_bert_ids_and_embeds,
        module="",
        fix_numbers=(),
        words=("pass exactly one of input_ids and inputs_embeds",),
        note="input_ids and inputs_embeds both passed",
    ),
    Broken(
        "hf_t5_without_decoder_inputs",
        build_t5_without_decoder_inputs,
        module="decoder",
        fix_numbers=(),
        words=("decoder_input_ids", "pass labels"),
        absent=("exactly one of input_ids and inputs_embeds",),
        note="a seq2seq forward without decoder_input_ids or labels",
    ),
]
