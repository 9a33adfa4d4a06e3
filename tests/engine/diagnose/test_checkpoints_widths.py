"""check_state_dict on models built wider, narrower or for other input channels: a
Hugging Face config value only when a model built with it has the checkpoint's shapes, the
layers named otherwise; each fix applied and loaded."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tests.engine.diagnose.test_checkpoints import (
    SmallResNet,
    apply_fix,
    bert_config,
    check,
    gpt2,
    kinds,
    mismatch,
    said,
    vit,
)

T = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("quiet_transformers")


# -- widths ------------------------------------------------------------------------------------


def test_bert_width_and_heads_changed() -> None:
    sd = T.BertModel(bert_config(hidden_size=64, num_attention_heads=4)).state_dict()
    model = T.BertModel(bert_config())
    result = check(model, sd)
    assert kinds(result) == ["config"]
    assert mismatch(result, "encoder.layer.0.intermediate.dense.weight") == ((37, 32), (37, 64))
    text = said(result)
    assert "config.hidden_size=64 (the model has 32)" in text
    assert "num_attention_heads" in text and "it would be 4" in text
    loaded = apply_fix(model, sd, result)
    assert loaded.config.hidden_size == 64


def test_gpt2_fused_attention_width() -> None:
    sd = gpt2(n_embd=64).state_dict()
    model = gpt2()
    result = check(model, sd)
    assert mismatch(result, "transformer.h.0.attn.c_attn.weight") == ((32, 96), (64, 192))
    assert kinds(result) == ["config"]
    assert "config.n_embd=64" in said(result)
    apply_fix(model, sd, result)


def test_intermediate_size_changed() -> None:
    sd = T.BertModel(bert_config(intermediate_size=48)).state_dict()
    model = T.BertModel(bert_config())
    result = check(model, sd)
    assert "config.intermediate_size=48 (the model has 37)" in said(result)
    assert len(result.mismatches) == 6  # two layers: weight and bias in, weight out
    apply_fix(model, sd, result)


def llama(**changes: Any) -> nn.Module:
    values: dict[str, Any] = dict(
        vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
    )  # fmt: skip
    values.update(changes)
    return T.LlamaForCausalLM(T.LlamaConfig(**values))


@pytest.mark.parametrize(
    "attribute, value", [("num_attention_heads", 8), ("num_key_value_heads", 4)]
)
def test_llama_head_counts_are_not_taken_for_a_width(attribute: str, value: int) -> None:
    # with head_dim fixed, more heads widen the attention projections only: hidden_size=64
    # would fit q_proj's first dimension but not the embeddings and norms
    sd = llama(**{attribute: value}).state_dict()
    model = llama()
    rng = torch.random.get_rng_state()
    result = check(model, sd)
    assert torch.equal(rng, torch.random.get_rng_state())  # the trial build drew nothing
    assert kinds(result) == ["config"]
    text = said(result)
    assert f"config.{attribute}={value} (the model has {value // 2})" in text
    assert "hidden_size" not in text
    loaded = apply_fix(model, sd, result)
    assert getattr(loaded.config, attribute) == value


def test_no_config_fix_without_a_config_that_builds_the_shapes() -> None:
    sd = T.BertModel(bert_config()).state_dict()
    sd["encoder.layer.0.attention.self.query.weight"] = torch.zeros(32, 33)
    result = check(T.BertModel(bert_config()), sd)
    assert kinds(result) == ["shape"]
    assert "config." not in said(result)
    assert "query (Linear): in_features 32 in the model, 33 in the checkpoint" in said(result)
    assert result.fix is None


def test_vit_mlp_named_fc1_is_no_classifier() -> None:
    sd = vit(32, intermediate_size=48).state_dict()
    model = vit(32)
    result = check(model, sd)
    assert kinds(result) == ["config"]
    assert mismatch(result, "vit.layers.0.mlp.fc1.weight") == ((37, 32), (48, 32))
    assert "config.intermediate_size=48 (the model has 37)" in said(result)
    apply_fix(model, sd, result)


class TwoConvs(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3)
        self.conv2 = nn.Conv2d(width, 8, 3)
        self.fc = nn.Linear(8, 10)


def test_a_later_conv_reading_a_wider_layer_is_a_width() -> None:
    result = check(TwoConvs(8), TwoConvs(16).state_dict())
    assert kinds(result) == ["width"]
    text = said(result)
    assert "conv1 (Conv2d): out_channels 8 in the model, 16 in the checkpoint" in text
    assert "conv2 (Conv2d): in_channels 8 in the model, 16 in the checkpoint" in text
    assert "input channel" not in text


def test_square_sequence_lengths_are_no_image_grid() -> None:
    sd = T.BertModel(bert_config(max_position_embeddings=1024)).state_dict()
    model = T.BertModel(bert_config(max_position_embeddings=256))  # 16x16 and 32x32, but text
    result = check(model, sd)
    assert "1024 positions, the model's 256" in said(result)
    assert "grid" not in said(result)
    apply_fix(model, sd, result)


def test_a_users_subclass_is_not_built_to_test_a_config() -> None:
    built: list[int] = []

    class MyBert(T.BertModel):  # type: ignore[misc]
        def __init__(self, config: Any) -> None:
            built.append(1)
            super().__init__(config)

    sd = MyBert(bert_config(hidden_size=64)).state_dict()
    model = MyBert(bert_config())
    built.clear()
    result = check(model, sd)
    assert built == []  # its constructor is the user's code: never run to try a config
    assert "config" not in kinds(result) and "width" in kinds(result)


def test_plain_width_names_the_layers() -> None:
    sd = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2)).state_dict()
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    result = check(model, sd)
    assert kinds(result) == ["width"]
    text = said(result)
    assert "0 (Linear): out_features 32 in the model, 64 in the checkpoint" in text
    assert "2 (Linear): in_features 32 in the model, 64 in the checkpoint" in text
    assert result.fix is None  # the model's definition has to change


# -- input channels ----------------------------------------------------------------------------


@pytest.mark.parametrize("model_channels, saved_channels", [(1, 3), (4, 3), (3, 1), (2, 3)])
def test_plain_conv_input_channels(model_channels: int, saved_channels: int) -> None:
    sd = SmallResNet(channels=saved_channels).state_dict()
    model = SmallResNet(channels=model_channels)
    result = check(model, sd)
    assert kinds(result) == ["input channels"]
    assert mismatch(result, "conv1.weight") == (
        (8, model_channels, 7, 7),
        (8, saved_channels, 7, 7),
    )
    text = said(result)
    assert f"conv1 takes {model_channels} input channel" in text
    assert f"in the model, {saved_channels} in the checkpoint" in text
    loaded = apply_fix(model, sd, result)
    with torch.no_grad():
        nn.functional.conv2d(torch.ones(1, model_channels, 8, 8), loaded.conv1.weight)


def test_convnext_grayscale_checkpoint() -> None:
    def convnext(channels: int) -> nn.Module:
        config = T.ConvNextConfig(
            num_channels=channels, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3
        )
        return T.ConvNextForImageClassification(config)

    sd = convnext(1).state_dict()
    model = convnext(3)
    result = check(model, sd)
    text = said(result)
    assert "3 input channels in the model, 1 in the checkpoint (grayscale vs RGB)" in text
    assert "config.num_channels=1" in text
    apply_fix(model, sd, result)
