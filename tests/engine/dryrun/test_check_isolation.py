"""check() against a plain run, model by model: it never raises, it leaves every module and
every input as it found them (same objects, same bits), and a plain call afterwards gives
bit for bit the output it gives without the dry run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from tests.broken_models import CORPUS
from tests.models import ZOO

Built = tuple[nn.Module, tuple[Any, ...], dict[str, Any]]


def _tensors(value: Any, seen: set[int] | None = None) -> Iterator[torch.Tensor]:
    """Every tensor in a value, in a fixed order: containers, dataclasses, plain objects."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, (str, bytes, int, float, type(None))):
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, nn.Module):
        for v in vars(value).values():
            yield from _tensors(v, seen)


def _bits(tensor: torch.Tensor) -> torch.Tensor | None:
    if tensor.device.type == "meta" or isinstance(tensor, nn.parameter.UninitializedParameter):
        return None
    return tensor.detach().clone().contiguous().reshape(-1).view(torch.uint8)


def _ids(value: Any, seen: set[int] | None = None) -> list[Any]:
    """Identities of everything an input holds, down to its tensors."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, torch.Tensor):
        return [id(value)]
    seen.add(id(value))
    if isinstance(value, dict):
        return [id(value), *((k, _ids(v, seen)) for k, v in value.items())]
    if isinstance(value, (list, tuple)):
        return [id(value), type(value), *(_ids(v, seen) for v in value)]
    if hasattr(value, "__dict__") and not isinstance(value, (nn.Module, type)):
        return [id(value), type(value), _ids(vars(value), seen)]
    return [id(value)]


def fingerprint(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Module attributes and tables by identity, tensors by identity and bits, inputs alike."""
    ids: list[Any] = []
    tensors: list[torch.Tensor] = []
    for path, module in model.named_modules(remove_duplicate=False):
        state = vars(module)
        ids.append((path, [(k, id(v)) for k, v in state.items()]))
        for name, table in state.items():
            if isinstance(table, dict):  # _parameters, _buffers, _modules, the hook dicts
                ids.append((path, name, [(k, id(v)) for k, v in table.items()]))
                tensors.extend(v for v in table.values() if isinstance(v, torch.Tensor))
        tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    tensors.extend(_tensors((args, kwargs)))
    inputs = [_ids(args), _ids(kwargs)]
    return ids, inputs, [(id(t), type(t), _bits(t)) for t in tensors]


def same(a: Any, b: Any) -> bool:
    ids_a, inputs_a, tensors_a = a
    ids_b, inputs_b, tensors_b = b
    if ids_a != ids_b or inputs_a != inputs_b or len(tensors_a) != len(tensors_b):
        return False
    for (i, ta, x), (j, tb, y) in zip(tensors_a, tensors_b, strict=True):
        if i != j or ta is not tb or (x is None) != (y is None):
            return False
        if x is not None and not torch.equal(x, y):
            return False
    return True


def plain_call(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The output's tensors as bits, or the exception's type and text."""
    try:
        with torch.no_grad():
            out = model(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return [(tuple(t.shape), t.dtype, _bits(t)) for t in _tensors(out)]


def same_output(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return len(a) == len(b) and all(
        sa == sb and da == db and (x is None) == (y is None) and (x is None or torch.equal(x, y))
        for (sa, da, x), (sb, db, y) in zip(a, b, strict=True)
    )


# -- the models -------------------------------------------------------------------------------


def _hf() -> Any:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return transformers


def _gpt2() -> Built:
    t = _hf()
    torch.manual_seed(0)
    config = t.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=32)
    model = t.GPT2LMHeadModel(config).eval()
    return model, (), {"input_ids": torch.randint(0, 100, (2, 7))}


def _llama_decoding_step() -> Built:
    t = _hf()
    torch.manual_seed(0)
    config = t.LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=100, max_position_embeddings=64,
    )  # fmt: skip
    model = t.LlamaForCausalLM(config).eval()
    ids = torch.randint(3, 100, (2, 6))
    with torch.no_grad():
        first = model(input_ids=ids, use_cache=True)
    step = first.logits[:, -1:].argmax(-1)
    return model, (), {"input_ids": step, "past_key_values": first.past_key_values}


def _bert() -> Built:
    t = _hf()
    torch.manual_seed(0)
    config = t.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        vocab_size=100, max_position_embeddings=32,
    )  # fmt: skip
    model = t.BertModel(config).eval()
    ids = torch.randint(0, 100, (2, 9))
    return model, (), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _t5() -> Built:
    t = _hf()
    torch.manual_seed(0)
    config = t.T5Config(
        d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=100,
        decoder_start_token_id=0,
    )  # fmt: skip
    model = t.T5ForConditionalGeneration(config).eval()
    return (
        model,
        (),
        {
            "input_ids": torch.randint(0, 100, (2, 8)),
            "decoder_input_ids": torch.randint(0, 100, (2, 5)),
        },
    )


def _planted(build: Callable[[], Built], **inputs: Callable[[], Any]) -> Callable[[], Built]:
    """`build` with bugs planted in its inputs (real integer tensors the dry run keeps real)."""

    def planted() -> Built:
        model, args, kwargs = build()
        return model, args, {**kwargs, **{k: make() for k, make in inputs.items()}}

    return planted


def _far_ids() -> torch.Tensor:
    ids = torch.randint(0, 100, (2, 9))
    ids[1, 2] = 150
    return ids


def _short_mask() -> torch.Tensor:
    return torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


Case = tuple[Callable[[], Built], Callable[[], Any] | None, Callable[[], Any] | None]

CASES: dict[str, Case] = {
    **{f"zoo-{c.name}": (c.build, c.loss_fn, c.target) for c in ZOO.values()},
    **{f"broken-{c.name}": (c.build, c.loss_fn, c.target) for c in CORPUS},
    "hf-gpt2": (_gpt2, None, None),
    "hf-llama-dynamic-cache": (_llama_decoding_step, None, None),
    "hf-bert": (_bert, None, None),
    "hf-t5": (_t5, None, None),
    "broken-hf-gpt2-ids": (_planted(_gpt2, input_ids=_far_ids), None, None),
    "broken-hf-gpt2-labels": (_planted(_gpt2, labels=lambda: torch.full((2, 7), 120)), None, None),
    "broken-hf-bert-short-mask": (_planted(_bert, attention_mask=_short_mask), None, None),
    "broken-hf-llama-cache-ids": (_planted(_llama_decoding_step, input_ids=_far_ids), None, None),
    "broken-hf-t5-long-mask": (
        _planted(_t5, attention_mask=lambda: torch.ones(2, 12, dtype=torch.long)),
        None,
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_check_leaves_model_and_inputs_as_they_were(name: str) -> None:
    build, loss_fn, target = CASES[name]
    model, args, kwargs = build()
    expected = plain_call(model, args, kwargs)  # a fresh copy, without the dry run

    model, args, kwargs = build()
    extra = {"loss_fn": loss_fn(), "target": target() if target else None} if loss_fn else {}
    before = fingerprint(model, args, kwargs)
    rng = torch.random.get_rng_state()
    result = inspector.check(model, *args, **extra, **kwargs)  # never raises
    if not name.startswith("broken-"):  # healthy: no false error
        assert not result.errors, [str(f) for f in result]
    assert same(fingerprint(model, args, kwargs), before)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert same_output(plain_call(model, args, kwargs), expected)


def test_global_registration_hooks_never_see_the_stand_ins() -> None:
    """A process-wide parameter or buffer registration hook (a library that wraps every new
    parameter) is the user's: check's stand-ins and the layers built to verify a fix are not
    registrations of the program, and it is not called for them."""
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_parameter_registration_hook,
    )

    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    calls: list[str] = []
    handles = [
        register_module_parameter_registration_hook(lambda m, n, p: calls.append(n)),
        register_module_buffer_registration_hook(lambda m, n, b: calls.append(n)),
    ]
    try:
        result = inspector.check(model, torch.randn(3, 4))
        bad = inspector.check(model, torch.randn(3, 5))  # its fix is checked on a new layer
        traced = inspector.trace(model, torch.randn(3, 5))  # and the real run's too
    finally:
        for handle in handles:
            handle.remove()
    assert result.ok and not bad.ok and bad.errors[0].fixes
    assert traced.error is not None and traced.diagnosis is not None
    assert "nn.Linear(5, 8)" in traced.diagnosis.fixes[0]
    assert calls == []
