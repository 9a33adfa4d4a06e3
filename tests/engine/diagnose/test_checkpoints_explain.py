"""check_state_dict on missing and unexpected keys, matching and odd checkpoints, its
displays, and `inspector.explain()` on a failing load_state_dict: one note on the original
error, or none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from tests.engine.diagnose.test_checkpoints import (
    SmallResNet,
    apply_fix,
    check,
    gpt2,
    kinds,
    mismatch,
    said,
)

T = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("quiet_transformers")


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


def test_a_bare_layer_is_named_as_the_root() -> None:
    result = check(nn.Linear(3, 2), {"weight": torch.zeros(5, 3), "bias": torch.zeros(5)})
    text = said(result)
    assert "(root) has 2 classes in the model, 5 in the checkpoint" in text
    assert "build the model as nn.Linear(3, 5)" in text
    apply_fix(nn.Linear(3, 2), {"weight": torch.zeros(5, 3), "bias": torch.zeros(5)}, result)


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
