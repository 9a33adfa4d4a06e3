"""Masks that disagree with their ids and pass without an error: the diagnosis of the pass."""

from __future__ import annotations

import pytest
import torch

import inspector

T = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("quiet_transformers")


def _bert() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    return T.BertModel(cfg).eval()


@pytest.mark.parametrize(("length", "words"), [(12, "12 entries for 10 tokens"),
                                               (8, "it covers 8 of the 10 tokens")])  # fmt: skip
def test_a_mask_of_another_length_than_positional_ids_is_the_diagnosis(
    length: int, words: str
) -> None:
    ids = torch.randint(0, 100, (2, 10))
    diag = inspector.diagnose(_bert(), ids, attention_mask=torch.ones(2, length))
    assert diag is not None and diag.kind == "warning" and diag.code == "input-mask-shape"
    assert f"attention_mask (2, {length}) does not match input_ids (2, 10)" in diag.summary
    assert words in diag.summary and "(2, 10)" in diag.fixes[0]


def test_matching_masks_and_cached_decoding_say_nothing() -> None:
    ids = torch.randint(0, 100, (2, 10))
    assert inspector.diagnose(_bert(), ids, attention_mask=torch.ones(2, 10)) is None
    torch.manual_seed(0)
    cfg = T.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64)
    gpt2 = T.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        past = gpt2(torch.randint(0, 100, (2, 6)), use_cache=True).past_key_values
    step = torch.randint(0, 100, (2, 1))  # one new token, the mask covers the 6 cached too
    assert (
        inspector.diagnose(gpt2, step, attention_mask=torch.ones(2, 7), past_key_values=past)
        is None
    )
