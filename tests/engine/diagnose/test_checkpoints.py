"""check_state_dict on real checkpoint mismatches: Hugging Face models from tiny random configs
(nothing downloaded) and plain torchvision-like models. Each advice is verified by applying it:
the result's `fix` runs, then load_state_dict succeeds. The model is never modified."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.diagnose.checkpoints_report import StateDictCheck

T = pytest.importorskip("transformers")


@pytest.fixture(autouse=True, scope="module")
def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()


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


# -- missing and unexpected keys ---------------------------------------------------------------


def test_unrelated_missing_and_unexpected_keys_are_grouped() -> None:
    sd = SmallResNet().state_dict()
    sd.update({f"aux.{i}.weight": torch.zeros(5, i + 1) for i in range(20)})
    model = SmallResNet(gate=True)
    result = check(model, sd)
    assert kinds(result) == ["missing", "unexpected"]
    assert len(result.missing) == 6 and len(result.unexpected) == 20
    text = said(result)
    assert "layers.*.gate.* (6)" in text
    assert "aux.* (20)" in text
    assert "aux.7.weight" not in text
    assert result.load == "model.load_state_dict(sd, strict=False)"
    apply_fix(model, sd, result)


def test_non_strict_allows_keys_but_not_shapes() -> None:
    sd = SmallResNet().state_dict()
    del sd["fc.bias"]
    sd["extra.weight"] = torch.zeros(2)
    model = SmallResNet()
    assert not check(model, sd).ok
    loose = check(model, sd, strict=False)
    assert loose.ok and loose.fix is None
    assert "strict=False" in loose.headline() and "1 stay as initialised" in loose.headline()
    sd["fc.weight"] = torch.zeros(11, 8)
    shaped = check(model, sd, strict=False)
    assert not shaped.ok
    assert mismatch(shaped, "fc.weight") == ((10, 8), (11, 8))


def test_thousands_of_keys_are_grouped_quickly() -> None:
    model = nn.Sequential(*[nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)) for _ in range(1500)])
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("1.bias")}
    sd.update({f"extra.{i}.weight": torch.zeros(1) for i in range(3000)})
    result = check(model, sd)
    text = said(result)
    assert "1500 key(s) of the model are not in the checkpoint: *.1.bias (1500)" in text
    assert "extra.* (3000)" in text
    assert len(str(result).splitlines()) < 12


def test_matching_state_dict_says_so_and_nothing_else() -> None:
    model = gpt2()
    result = check(model, gpt2().state_dict())
    assert result.ok and not result.causes and not result.mismatches
    assert result.fix is None
    assert str(result) == (
        "the state dict matches GPT2LMHeadModel: 29 of 29 tensors, same names and shapes"
    )


def test_old_batchnorm_checkpoint_without_num_batches_tracked() -> None:
    saved = SmallResNet().state_dict()  # without its _metadata: the format before versions
    sd = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    result = check(SmallResNet(), sd)
    assert result.ok and not result.causes
    saved = type(saved)((k, v) for k, v in saved.items() if k in sd)
    saved._metadata = SmallResNet().state_dict()._metadata  # type: ignore[attr-defined]
    newer = check(SmallResNet(), saved)  # version 2 BatchNorm: torch wants them
    assert not newer.ok and "layers.*.bn.num_batches_tracked (3)" in str(newer)


def test_non_tensor_value() -> None:
    sd: dict[str, Any] = dict(SmallResNet().state_dict())
    sd["fc.bias"] = [0.0] * 10
    result = check(SmallResNet(), sd)
    assert kinds(result) == ["not a tensor"]
    assert mismatch(result, "fc.bias") == ((10,), None)


def test_tensor_subclass_code_is_not_called() -> None:
    calls: list[str] = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None):  # type: ignore[no-untyped-def]
            calls.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    sd = {k: v.as_subclass(Logged) for k, v in SmallResNet(classes=3).state_dict().items()}
    calls.clear()
    result = inspector.check_state_dict(SmallResNet(), sd)
    assert calls == []
    assert mismatch(result, "fc.weight") == ((10, 8), (3, 8))


# -- display -----------------------------------------------------------------------------------


def test_displays() -> None:
    sd = SmallResNet(classes=3).state_dict()
    result = inspector.check_state_dict(SmallResNet(), sd)
    html = result._repr_html_()
    assert html.startswith("<pre") and "fc has 10 classes" in html
    printed: list[str] = []

    class Printer:
        def text(self, s: str) -> None:
            printed.append(s)

    result._repr_pretty_(Printer(), False)
    assert printed == [str(result)]
    assert repr(result).startswith("<StateDictCheck load_state_dict into SmallResNet")


# -- explain() ---------------------------------------------------------------------------------


def _load_error(load: Callable[[], Any]) -> RuntimeError:
    try:
        load()
    except RuntimeError as error:
        return error
    raise AssertionError("load_state_dict did not fail")


def test_explain_adds_one_note_to_the_original_error() -> None:
    sd = SmallResNet(classes=1000).state_dict()
    plain_model, model = SmallResNet(), SmallResNet()
    model.load_state_dict(plain_model.state_dict())
    loads: list[int] = []
    model.register_load_state_dict_post_hook(lambda module, keys: loads.append(1))
    plain = _load_error(lambda: plain_model.load_state_dict(sd))

    def inside() -> None:
        with inspector.explain():
            model.load_state_dict(sd)

    error = _load_error(inside)
    assert type(error) is type(plain) and str(error) == str(plain)
    assert loads == [1]  # loaded once
    assert len(error.__notes__) == 1
    note = said(error.__notes__[0])
    assert note.startswith("torch-inspector: load_state_dict into SmallResNet (strict=True)")
    assert "fc has 10 classes in the model, 1000 in the checkpoint" in note
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "load_state_dict" and frames[-2] == "inside"
    # torch copied what matched before raising, with or without explain(): the same state
    for key, value in plain_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_explain_keeps_the_callers_strict() -> None:
    sd = SmallResNet().state_dict()
    sd["fc.weight"] = torch.zeros(4, 8)
    sd["extra"] = torch.zeros(1)
    model = SmallResNet()

    def inside() -> None:
        with inspector.explain():
            model.load_state_dict(sd, strict=False)

    note = _load_error(inside).__notes__[0]
    assert "(strict=False)" in note and "unexpected" not in note.split("\n")[1]


def test_explain_leaves_a_load_error_of_another_kind_alone() -> None:
    sd = {k: v.to("meta") for k, v in SmallResNet().state_dict().items()}  # no data to copy
    model = SmallResNet()
    assert inspector.check_state_dict(model, sd).ok  # names and shapes agree

    def inside() -> None:
        with inspector.explain():
            model.load_state_dict(sd)

    error = _load_error(inside)
    assert "While copying the parameter named" in str(error)
    assert not getattr(error, "__notes__", [])


def test_explain_for_another_model_leaves_the_error_alone() -> None:
    sd = SmallResNet(classes=3).state_dict()
    model = SmallResNet()

    def inside() -> None:
        with inspector.explain(SmallResNet()):
            model.load_state_dict(sd)

    assert not getattr(_load_error(inside), "__notes__", [])


def test_explain_fault_leaves_the_error_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.engine.diagnose import checkpoints

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("inspector fault")

    monkeypatch.setattr(checkpoints, "model_entries", broken)
    sd = SmallResNet(classes=3).state_dict()
    model = SmallResNet()

    def inside() -> None:
        with inspector.explain():
            model.load_state_dict(sd)

    error = _load_error(inside)
    assert str(error).startswith("Error(s) in loading state_dict for SmallResNet")
    assert not getattr(error, "__notes__", [])


def test_explain_on_a_hugging_face_vocabulary() -> None:
    sd = gpt2().state_dict()
    model = gpt2()
    model.resize_token_embeddings(103)

    def inside() -> None:
        with inspector.explain():
            model.load_state_dict(sd)

    (note,) = map(said, _load_error(inside).__notes__)
    assert "the checkpoint has 100 rows, the model 103: 3 token(s) added" in note
    assert "model.resize_token_embeddings(100)" in note
