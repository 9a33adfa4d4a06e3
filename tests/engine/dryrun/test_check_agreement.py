"""check() against inspector.diagnose on the real run, model by model.

Where the real run fails, the dry run names the same module (or input) with the same
explanation family (Diagnosis.code), or says explicitly that it could not verify; where the
real run passes, the dry run reports no error. The cases: the healthy zoo, every broken model
of the corpus, healthy Hugging Face random configs, and the same configs with bugs planted in
their inputs (ids out of range, a wrong-length attention mask, a sequence longer than the position
table, token types and labels out of range). The counts are printed by the last test
(`pytest -s`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from tests.broken_models import CORPUS
from tests.models import ZOO

Built = tuple[nn.Module, tuple[Any, ...], dict[str, Any]]
Extra = Callable[[], dict[str, Any]]


def _ids(n: int = 7) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randint(0, 100, (2, n))


def _out_of_range(high: int = 150) -> torch.Tensor:
    ids = _ids()
    ids[1, 3] = high
    return ids


def _mask(length: int, padded: bool) -> torch.Tensor:
    mask = torch.ones(2, length, dtype=torch.long)
    if padded:
        mask[0, length - 2 :] = 0
    return mask


# -- Hugging Face random configs ----------------------------------------------------------------


def _hf() -> Any:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    return transformers


def _gpt2() -> Built:
    t = _hf()
    config = t.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=32)
    return t.GPT2LMHeadModel(config).eval(), (), {"input_ids": _ids()}


def _bert_config(t: Any, **extra: Any) -> Any:
    return t.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        vocab_size=100, max_position_embeddings=32, **extra,
    )  # fmt: skip


def _bert() -> Built:
    t = _hf()
    model = t.BertModel(_bert_config(t)).eval()
    return model, (), {"input_ids": _ids(9), "attention_mask": torch.ones(2, 9, dtype=torch.long)}


def _bert_classifier() -> Built:
    t = _hf()
    model = t.BertForSequenceClassification(_bert_config(t, num_labels=3)).eval()
    return model, (), {"input_ids": _ids()}


def _llama() -> Built:
    t = _hf()
    config = t.LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=100, max_position_embeddings=64,
    )  # fmt: skip
    return t.LlamaForCausalLM(config).eval(), (), {"input_ids": _ids()}


def _llama_decoding_step() -> Built:
    model, _, kwargs = _llama()
    with torch.no_grad():
        first = model(**kwargs, use_cache=True)
    step = first.logits[:, -1:].argmax(-1)
    return model, (), {"input_ids": step, "past_key_values": first.past_key_values}


def _t5() -> Built:
    t = _hf()
    config = t.T5Config(
        d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=100,
        decoder_start_token_id=0,
    )  # fmt: skip
    model = t.T5ForConditionalGeneration(config).eval()
    return model, (), {"input_ids": _ids(8), "decoder_input_ids": _ids(5)}


def _with(build: Callable[[], Built], **inputs: Callable[[], Any]) -> Callable[[], Built]:
    """`build`'s model with its inputs replaced (or added) by `inputs`."""

    def planted() -> Built:
        model, args, kwargs = build()
        return model, args, {**kwargs, **{k: make() for k, make in inputs.items()}}

    return planted


HF: dict[str, Callable[[], Built]] = {
    "gpt2": _gpt2,
    "bert": _bert,
    "t5": _t5,
    "llama-dynamic-cache": _llama_decoding_step,
    "gpt2-ids-out-of-range": _with(_gpt2, input_ids=_out_of_range),
    "gpt2-sequence-past-positions": _with(_gpt2, input_ids=lambda: _ids(40)),
    "gpt2-position-ids-past-table": _with(
        _gpt2, input_ids=_ids, position_ids=lambda: torch.arange(30, 37).expand(2, 7)
    ),
    "gpt2-labels-out-of-range": _with(_gpt2, input_ids=_ids, labels=_out_of_range),
    "gpt2-short-padded-mask": _with(_gpt2, input_ids=_ids, attention_mask=lambda: _mask(5, True)),
    "gpt2-short-ones-mask": _with(_gpt2, input_ids=_ids, attention_mask=lambda: _mask(5, False)),
    "bert-ids-out-of-range": _with(
        _bert, input_ids=_out_of_range, attention_mask=lambda: _mask(7, False)
    ),
    "bert-negative-ids": _with(_bert, input_ids=lambda: -_ids() - 1),
    "bert-sequence-past-positions": _with(
        _bert, input_ids=lambda: _ids(40), attention_mask=lambda: _mask(40, False)
    ),
    "bert-token-types-out-of-range": _with(
        _bert,
        input_ids=_ids,
        attention_mask=lambda: _mask(7, False),
        token_type_ids=lambda: torch.full((2, 7), 2),
    ),
    "bert-short-padded-mask": _with(_bert, input_ids=_ids, attention_mask=lambda: _mask(5, True)),
    "bert-short-ones-mask": _with(_bert, input_ids=_ids, attention_mask=lambda: _mask(5, False)),
    "bert-classifier-labels-out-of-range": _with(
        _bert_classifier, labels=lambda: torch.tensor([0, 5])
    ),
    "llama-ids-out-of-range": _with(_llama, input_ids=_out_of_range),
    "llama-short-padded-mask": _with(_llama, attention_mask=lambda: _mask(5, True)),
    "llama-long-padded-mask": _with(_llama, attention_mask=lambda: _mask(9, True)),
    "t5-ids-out-of-range": _with(_t5, input_ids=_out_of_range),
    "t5-decoder-ids-out-of-range": _with(_t5, decoder_input_ids=_out_of_range),
    "t5-short-padded-mask": _with(_t5, attention_mask=lambda: _mask(5, True)),
    "t5-short-ones-mask": _with(_t5, attention_mask=lambda: _mask(5, False)),
}


def _corpus_case(case: Any) -> tuple[Callable[[], Built], Extra]:
    def extra() -> dict[str, Any]:
        if case.loss_fn is None:
            return {}
        return {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}

    return case.build, extra


CASES: dict[str, tuple[Callable[[], Built], Extra]] = {
    **{f"zoo-{c.name}": _corpus_case(c) for c in ZOO.values()},
    **{f"broken-{c.name}": _corpus_case(c) for c in CORPUS},
    **{f"hf-{name}": (build, dict) for name, build in HF.items()},
}
WARNING_CASES = {f"broken-{c.name}" for c in CORPUS if c.kind == "warning"}


def _key(finding: Any) -> tuple[str, str]:
    return finding.module, finding.code


@functools.cache
def outcome(name: str) -> tuple[str, Any, Any]:
    """("agree" | "not-verified" | "disagree", what the real run says, what check says)."""
    build, extra = CASES[name]
    model, args, kwargs = build()
    real = inspector.diagnose(model, *args, **extra(), **kwargs)
    model, args, kwargs = build()
    result = inspector.check(model, *args, **extra(), **kwargs)
    said = [(f.kind, *_key(f)) for f in result]
    if name in WARNING_CASES:  # a silent bug of the shapes: the same warning
        found = real is not None and any(_key(f) == _key(real) for f in result)
        return ("agree" if found and not result.errors else "disagree"), real and _key(real), said
    expected = _key(real) if real is not None and real.kind == "error" else None
    first = _key(result.errors[0]) if result.errors else None
    if first is None and any(f.code == "not-verified" for f in result):
        return "not-verified", expected, said  # says so, whatever the real run does
    if first == expected:
        return "agree", expected, said
    return "disagree", expected, said


@pytest.mark.parametrize("name", list(CASES))
def test_check_agrees_with_the_real_run(name: str) -> None:
    verdict, real, said = outcome(name)
    assert verdict != "disagree", f"real run: {real}; check: {said}"


def test_ids_past_the_table_are_named_with_their_numbers() -> None:
    model, args, kwargs = _with(_gpt2, input_ids=lambda: _ids(40))()
    (finding,) = inspector.check(model, *args, **kwargs).errors
    assert finding.module == "transformer.wpe" and finding.code == "embedding-index"
    assert "num_embeddings=32" in finding.summary and "id 39" in finding.summary


def test_ids_computed_from_activations_are_listed_as_not_checked() -> None:
    class Quantizer(nn.Module):  # ids from an argmax: values a dry run does not have
        def __init__(self) -> None:
            super().__init__()
            self.score = nn.Linear(8, 16)
            self.codebook = nn.Embedding(16, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.codebook(self.score(x).argmax(-1))

    result = inspector.check(Quantizer(), torch.randn(2, 8))
    assert not result.errors and [f.code for f in result] == ["not-verified"]
    assert result[0].module == "codebook"
    assert "ids were not checked against codebook (16 rows)" in result[0].summary


def test_branches_on_integer_inputs_follow_the_real_values() -> None:
    class Skips(nn.Module):  # drops an all-ones mask, as transformers does
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            if mask.all():
                return self.fc(x)
            return self.fc(x) * mask  # a wrong-length mask fails only here

    x = torch.randn(2, 3, 4)
    assert not inspector.check(Skips(), x, torch.ones(2, 3, 1, dtype=torch.long))
    wrong = inspector.check(Skips(), x, torch.tensor([[[1], [0]]] * 2))
    assert [f.module for f in wrong.errors] == [""]


def test_agreement_counts() -> None:
    verdicts = [outcome(name)[0] for name in CASES]
    counts = {v: verdicts.count(v) for v in ("agree", "not-verified", "disagree")}
    print(f"\ncheck vs the real run: {len(CASES)} models, {counts['agree']} agree, "
          f"{counts['not-verified']} not verified, {counts['disagree']} disagree")  # fmt: skip
    assert counts["disagree"] == 0


def _healthy_zoos() -> dict[str, Callable[[], Built]]:
    """The random-config Hugging Face zoo (31 architectures) and the awkward healthy models."""
    from tests.healthy_zoo import AWKWARD, hf_cases

    cases: dict[str, Callable[[], Built]] = {}
    for case in hf_cases():
        cases[f"hf-zoo-{case.name}"] = lambda case=case: ((built := case.build())[0], (),
                                                           built[1])  # fmt: skip
    for awkward in AWKWARD:
        cases[f"awkward-{awkward.name}"] = awkward.build
    return cases


_SAME_CASES: dict[str, tuple[Callable[[], Built], Extra]] = {
    **CASES,
    **{name: (build, dict) for name, build in _healthy_zoos().items()},
}


@pytest.mark.parametrize("name", list(_SAME_CASES))
def test_the_shortcuts_change_nothing_check_reports(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every case checked with the ops answered ahead of the fake mode and without them: the
    same findings, word for word, and the same calls with the same inputs and outputs."""
    from inspector.engine.dryrun import check as check_module
    from inspector.engine.dryrun.fake import FakeRun

    build, extra = _SAME_CASES[name]

    def seen(result: Any) -> tuple[Any, ...]:
        found = [(f.kind, f.module, f.code, f.summary, tuple(f.fixes)) for f in result]
        calls = [(c.path, c.status, repr(c.inputs), repr(c.kwargs), repr(c.outputs))
                 for c in result.calls]  # fmt: skip
        return found, calls, result.stopped

    model, args, kwargs = build()
    with_shortcuts = seen(inspector.check(model, *args, **extra(), **kwargs))
    monkeypatch.setattr(check_module, "FakeRun", functools.partial(FakeRun, shortcuts=False))
    model, args, kwargs = build()
    without = seen(inspector.check(model, *args, **extra(), **kwargs))
    assert with_shortcuts == without
