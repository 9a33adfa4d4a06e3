"""The bundled broken examples are diagnosed precisely; explain() and diagnose() contracts."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch import nn

import inspector
from tests.helpers import load_example

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_seed_cnn_first_error_is_the_stray_view() -> None:
    cnn = load_example("seed_cnn")
    model, args = cnn.build()
    diag = inspector.diagnose(model, *args)
    assert diag is not None and diag.kind == "error"
    assert diag.module == "" and diag.module_type == "SeedCNN"
    assert diag.line is not None and diag.line.file.endswith("seed_cnn.py")
    assert diag.line.text.strip() == "x = x.view(-1, 3 * 3 * 3)"
    assert diag.op is not None and diag.op.name == "view"
    assert diag.op.operand_shapes() == [(4, 3, 16, 16)]
    assert "768" in " ".join(diag.fixes)  # 3*16*16 values per sample
    assert "3072" in diag.summary


def test_seed_cnn_after_removing_the_views_names_fc1_with_96() -> None:
    cnn = load_example("seed_cnn")
    model, args = cnn.build()

    def fixed_forward(x: torch.Tensor) -> torch.Tensor:
        x = model.pool(model.conv1(x))
        x = model.pool(model.conv2(x))
        x = torch.flatten(x, 1)
        return model.fc2(model.fc1(x))

    model.forward = fixed_forward  # type: ignore[method-assign]
    diag = inspector.diagnose(model, *args)
    assert diag is not None and diag.module == "fc1"
    assert diag.summary == "fc1 expects 1024 input features but its input (4, 96) has 96"
    assert diag.fixes[0].startswith("fc1 = nn.Linear(96, 256)")
    assert "(4, 6, 4, 4)" in diag.fixes[0]


def test_seed_gan_names_the_generator_and_784() -> None:
    gan = load_example("seed_gan")
    model, args = gan.build()
    t = inspector.trace(model, *args, loss_fn=gan.loss_fn, target=gan.target())
    diag = t.diagnosis
    assert diag is not None and diag.module == "D"
    assert diag.line is not None and diag.line.text.strip() == "x = x.view(-1, 28 * 28)"
    assert any("10 features per sample" in d for d in diag.details + diag.fixes)
    assert "G.net.4 = nn.Linear(128, 784)" in diag.fixes[0]


def test_seed_gan_with_generator_fixed_names_the_bce_target() -> None:
    gan = load_example("seed_gan")
    model, args = gan.build()
    model.G.net[4] = nn.Linear(128, 784)
    t = inspector.trace(model, *args, loss_fn=gan.loss_fn, target=gan.target())
    diag = t.diagnosis
    assert diag is not None and diag.module == "loss_fn" and diag.module_type == "BCELoss"
    assert "(16, 1)" in diag.summary and "(16, 1, 28, 28)" in diag.summary
    assert "torch.ones(16, 1)" in diag.fixes[0]


def test_explain_keeps_the_original_exception() -> None:
    cnn = load_example("seed_cnn")
    model, args = cnn.build()
    try:
        model(*args)
    except RuntimeError as exc:
        plain_type, plain_message = type(exc), str(exc)
        plain_frames = _user_frames(exc)
    with pytest.raises(RuntimeError) as info, inspector.explain():
        model(*args)
    exc = info.value
    assert type(exc) is plain_type and str(exc) == plain_message
    # the same user frames below the calling line (torch's own frames differ with hooks on:
    # Module._call_impl takes its no-hook fast path in the plain run)
    assert _user_frames(exc)[1:] == plain_frames[1:]
    assert exc.__traceback__ is not None and exc.__traceback__.tb_frame.f_code.co_name == (
        "test_explain_keeps_the_original_exception"
    )
    notes = getattr(exc, "__notes__", [])
    assert len(notes) == 1 and "view(-1, 27)" in notes[0] and "768" in notes[0]
    assert not model._forward_hooks and not model._forward_pre_hooks


def _user_frames(exc: BaseException) -> list[tuple[str, int | None]]:
    return [
        (f.name, f.lineno)
        for f in traceback.extract_tb(exc.__traceback__)
        if "site-packages" not in f.filename
    ]


def test_explain_is_transparent_without_error() -> None:
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    with inspector.explain(model):
        out = model(x)
    assert torch.equal(out, model(x))
    assert not model._forward_hooks


def test_explain_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError, match="missing") as info, inspector.explain():
        raise KeyError("missing")
    assert getattr(info.value, "__notes__", None) in (None, [])  # no module call, nothing to add


def test_gan_example_runs_without_the_inspector_for_comparison() -> None:
    gan = load_example("seed_gan")
    model, args = gan.build()
    with pytest.raises(RuntimeError, match=r"shape '\[-1, 784\]' is invalid"):
        model(*args)
