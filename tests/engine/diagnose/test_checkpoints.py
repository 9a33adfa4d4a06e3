"""check_state_dict on real checkpoint mismatches: Hugging Face models from tiny random configs
(nothing downloaded) and plain torchvision-like models. Each advice is verified by applying it:
the result's `fix` runs, then load_state_dict succeeds. The model is never modified.

Here: vocabularies, position tables, classifier heads, prefixes, and the models and checks
the other test_checkpoints_* files share (widths and channels; keys, displays, explain())."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.diagnose.checkpoints_report import StateDictCheck

T = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("quiet_transformers")


# -- models ------------------------------------------------------------------------------------


def bert_config(**changes: Any) -> Any:
    values: dict[str, Any] = dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )  # fmt: skip
    values.update(changes)
    return T.BertConfig(**values)


def gpt2(**changes: Any) -> nn.Module:
    values: dict[str, Any] = dict(
        vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    values.update(changes)
    return T.GPT2LMHeadModel(T.GPT2Config(**values))


def vit(image_size: int, num_labels: int = 3, intermediate_size: int = 37) -> nn.Module:
    config = T.ViTConfig(
        image_size=image_size, patch_size=8, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=intermediate_size, num_labels=num_labels,
    )  # fmt: skip
    return T.ViTForImageClassification(config)


class Block(nn.Module):
    def __init__(self, width: int, gate: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        if gate:
            self.gate = nn.Linear(width, 1)


class SmallResNet(nn.Module):
    """torchvision's ResNet layout in miniature: conv1/bn1, layers, fc."""

    def __init__(self, classes: int = 10, channels: int = 3, gate: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layers = nn.Sequential(*[Block(8, gate) for _ in range(3)])
        self.fc = nn.Linear(8, classes)


class TinyLM(nn.Module):
    """An embedding with a tied output layer, no Hugging Face."""

    def __init__(self, vocab: int = 50, dim: int = 16) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.tok.weight


# -- what every check must hold ----------------------------------------------------------------


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


def check(model: nn.Module, sd: dict[str, Any], strict: bool = True) -> StateDictCheck:
    """check_state_dict, asserting the model is bit-identical afterwards and that `ok`
    agrees with what load_state_dict really does on a copy."""
    before = snapshot(model)
    result = inspector.check_state_dict(model, sd, strict=strict)
    after = snapshot(model)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    trial = copy.deepcopy(model)
    try:
        trial.load_state_dict(sd, strict=strict)
        loads = True
    except RuntimeError:
        loads = False
    assert result.ok == loads, str(result)
    return result


def apply_fix(model: nn.Module, sd: dict[str, Any], result: StateDictCheck) -> nn.Module:
    """Run the suggested fix as written (on a copy of the model) and return the model it
    loaded into; the load must succeed."""
    assert result.fix is not None, str(result)
    scope: dict[str, Any] = {"model": copy.deepcopy(model), "sd": dict(sd), "torch": torch}
    scope["nn"] = nn
    exec(result.fix, scope)
    loaded: nn.Module = scope["model"]
    return loaded


def mismatch(result: StateDictCheck, key: str) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    found = {m.key: m for m in result.mismatches}
    assert key in found, str(result)
    return found[key].model_shape, found[key].checkpoint_shape


def said(result: StateDictCheck | str) -> str:
    """The report with its wrapped lines joined: one space between words."""
    return " ".join(str(result).split())


def kinds(result: StateDictCheck) -> list[str]:
    return [c.kind for c in result.causes]


# -- vocabulary --------------------------------------------------------------------------------


def test_bert_vocabulary_grown_after_the_checkpoint() -> None:
    saved = T.BertForMaskedLM(bert_config())
    sd = saved.state_dict()
    model = T.BertForMaskedLM(bert_config())
    model.resize_token_embeddings(103)
    result = check(model, sd)
    assert mismatch(result, "bert.embeddings.word_embeddings.weight") == ((103, 32), (100, 32))
    assert mismatch(result, "cls.predictions.decoder.bias") == ((103,), (100,))
    assert kinds(result) == ["vocabulary"]
    text = said(result)
    assert "the checkpoint has 100 rows, the model 103: 3 token(s) added after" in text
    assert "model.resize_token_embeddings(100)" in text
    loaded = apply_fix(model, sd, result)
    assert loaded.get_input_embeddings().weight.shape == (103, 32)
    assert torch.equal(loaded.get_input_embeddings().weight[:100], sd[
        "bert.embeddings.word_embeddings.weight"
    ])  # fmt: skip


def test_gpt2_checkpoint_with_more_tokens_and_a_tied_head() -> None:
    saved = gpt2()
    saved.resize_token_embeddings(104)
    sd = saved.state_dict()
    model = gpt2()
    result = check(model, sd)
    assert mismatch(result, "transformer.wte.weight") == ((100, 32), (104, 32))
    assert mismatch(result, "lm_head.weight") == ((100, 32), (104, 32))
    text = said(result)
    assert "saved after 4 token(s) were added" in text
    assert "lm_head.weight tied to it" in text
    assert result.fix == "model.resize_token_embeddings(104)\nmodel.load_state_dict(sd)"
    loaded = apply_fix(model, sd, result)
    assert torch.equal(loaded.lm_head.weight, sd["lm_head.weight"])


@pytest.mark.parametrize("model_rows, saved_rows", [(53, 50), (50, 53)])
def test_plain_embedding_with_tied_output_layer(model_rows: int, saved_rows: int) -> None:
    sd = TinyLM(saved_rows).state_dict()
    model = TinyLM(model_rows)
    result = check(model, sd)
    assert mismatch(result, "tok.weight") == ((model_rows, 16), (saved_rows, 16))
    assert mismatch(result, "out.weight") == ((model_rows, 16), (saved_rows, 16))
    assert f"the checkpoint has {saved_rows} rows, the model {model_rows}" in said(result)
    loaded = apply_fix(model, sd, result)
    assert loaded.out.weight is loaded.tok.weight
    assert torch.equal(loaded.tok.weight[:50], sd["tok.weight"][:50])


# -- position tables ---------------------------------------------------------------------------


def test_vit_position_table_from_another_image_size() -> None:
    sd = vit(56).state_dict()  # 7x7 patches of 8
    model = vit(32)  # 4x4
    result = check(model, sd)
    key = "vit.embeddings.position_embeddings"
    assert mismatch(result, key) == ((1, 17, 32), (1, 50, 32))
    text = said(result)
    assert "1 class token and a 7x7 grid, the model's a 4x4 grid" in text
    assert "images of 56 vs 32 at patch size 8" in text
    assert "config.image_size=56" in text
    loaded = apply_fix(model, sd, result)
    assert torch.equal(loaded.state_dict()[key][:, :1], sd[key][:, :1])  # the class token kept
    with torch.no_grad():
        loaded(torch.randn(1, 3, 32, 32))


def test_bert_position_table_for_a_longer_sequence() -> None:
    sd = T.BertModel(bert_config(max_position_embeddings=128)).state_dict()
    model = T.BertModel(bert_config())
    result = check(model, sd)
    key = "embeddings.position_embeddings.weight"
    assert mismatch(result, key) == ((64, 32), (128, 32))
    text = said(result)
    assert "128 positions, the model's 64" in text
    assert "config.max_position_embeddings=128" in text
    loaded = apply_fix(model, sd, result)
    assert torch.equal(loaded.state_dict()[key], sd[key][:64])


# -- classifier heads --------------------------------------------------------------------------


def test_bert_classifier_with_another_number_of_labels() -> None:
    sd = T.BertForSequenceClassification(bert_config(num_labels=5)).state_dict()
    model = T.BertForSequenceClassification(bert_config(num_labels=2))
    result = check(model, sd)
    assert mismatch(result, "classifier.weight") == ((2, 32), (5, 32))
    assert mismatch(result, "classifier.bias") == ((2,), (5,))
    assert kinds(result) == ["classes"]
    text = said(result)
    assert "classifier has 2 classes in the model, 5 in the checkpoint" in text
    assert "config.num_labels=5" in text
    assert '{"classifier.weight", "classifier.bias"}' in result.fix  # type: ignore[operator]
    assert result.load == "model.load_state_dict(sd, strict=False)"
    loaded = apply_fix(model, sd, result)
    assert torch.equal(loaded.bert.pooler.dense.weight, sd["bert.pooler.dense.weight"])


def test_plain_resnet_fc_for_imagenet_classes() -> None:
    sd = SmallResNet(classes=1000).state_dict()
    model = SmallResNet(classes=10)
    result = check(model, sd)
    assert mismatch(result, "fc.weight") == ((10, 8), (1000, 8))
    assert "fc has 10 classes in the model, 1000 in the checkpoint" in said(result)
    assert "nn.Linear(8, 1000)" in said(result)
    apply_fix(model, sd, result)


# -- prefixes ----------------------------------------------------------------------------------


def test_data_parallel_module_prefix() -> None:
    model = T.BertModel(bert_config())
    sd = nn.DataParallel(T.BertModel(bert_config())).state_dict()
    assert all(k.startswith("module.") for k in sd)
    result = check(model, sd)
    assert kinds(result) == ["prefix"]
    assert len(result.missing) == len(result.unexpected) == len(sd)
    text = said(result)
    assert 'every key of the checkpoint starts with "module."' in text
    assert "DistributedDataParallel" in text
    assert '{k.removeprefix("module."): v for k, v in sd.items()}' in text
    assert len(text.splitlines()) < 8  # the keys are not listed one by one
    apply_fix(model, sd, result)


def test_torch_compile_prefix() -> None:
    source = SmallResNet()
    sd = torch.compile(source).state_dict()
    assert all(k.startswith("_orig_mod.") for k in sd)
    model = SmallResNet()
    result = check(model, sd)
    assert kinds(result) == ["prefix"]
    assert "torch.compile" in said(result)
    assert result.fix == (
        'sd = {k.removeprefix("_orig_mod."): v for k, v in sd.items()}\nmodel.load_state_dict(sd)'
    )
    apply_fix(model, sd, result)


def test_plain_state_dict_into_a_data_parallel_wrapper() -> None:
    sd = SmallResNet().state_dict()
    model = nn.DataParallel(SmallResNet())
    result = check(model, sd)
    assert kinds(result) == ["prefix"]
    assert "model.module.load_state_dict(sd)" in said(result)
    apply_fix(model, sd, result)


def test_prefixed_checkpoint_of_a_larger_model() -> None:
    sd = T.BertForMaskedLM(bert_config()).state_dict()  # "bert." and the "cls." head
    model = T.BertModel(bert_config(), add_pooling_layer=False)
    result = check(model, sd)
    assert kinds(result) == ["prefix"]
    text = said(result)
    assert 'start with "bert."' in text
    assert "cls.* (7)" in text
    apply_fix(model, sd, result)


def test_prefix_and_a_shape_mismatch_together() -> None:
    sd = {"module." + k: v for k, v in SmallResNet(classes=1000).state_dict().items()}
    model = SmallResNet(classes=10)
    result = check(model, sd)
    assert kinds(result) == ["prefix", "classes"]
    assert mismatch(result, "fc.weight") == ((10, 8), (1000, 8))
    apply_fix(model, sd, result)
