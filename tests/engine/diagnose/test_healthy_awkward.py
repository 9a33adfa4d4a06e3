"""No false alarms on awkward healthy models, and each warning's premise checked both ways.

The zoo (tests/healthy_zoo.py) holds what real code does on purpose: seq-first recurrent
layers and `output[-1]`, pairwise edge features, channels-last convs, default-init LSTMs on
raw values, zero-init branches and layer scales, zero position biases and queries, small
heads, MoE routers, -inf masks. Next to it, the same shapes with the premise made true must
still warn: the quiet cases are quiet for their reason, not because a family went silent.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import inspector
from inspector.engine.diagnose import is_diagnosis
from tests.healthy_zoo import AWKWARD, Awkward


def _shown(t: inspector.Trace) -> str:
    return "\n".join(str(f) for f in t.findings)


def _codes(t: inspector.Trace) -> list[str]:
    return [f.code for f in t.findings]


@pytest.mark.parametrize("case", AWKWARD, ids=[c.name for c in AWKWARD])
def test_eval_pass_is_quiet(case: Awkward) -> None:
    model, args, kwargs = case.build()
    model.eval()
    t = inspector.trace(model, *args, **kwargs)
    assert t.error is None, t.error
    assert t.findings == [], _shown(t)


@pytest.mark.parametrize("case", AWKWARD, ids=[c.name for c in AWKWARD])
def test_training_step_is_quiet(case: Awkward) -> None:
    model, args, kwargs = case.build()
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = inspector.trace(model, *args, loss_fn=case.loss, backward=True, **kwargs)
    assert t.error is None, t.error
    assert t.findings == [], _shown(t)


# -- the premise made true: the same shapes warn -----------------------------------------------


def test_a_seq_first_lstm_misread_with_a_real_batch_still_warns() -> None:
    from tests.healthy_zoo import SeqFirstTagger

    torch.manual_seed(0)
    # (batch=6, seq=100) data into the seq-first tagger: the per-step output keeps dim 0
    model = SeqFirstTagger()
    t = inspector.trace(model, torch.randn(6, 100, 8))
    assert "batch-first" not in _codes(t)  # (6, 100, 5): the batch of 100 is still there
    model.forward = lambda x: model.head(model.lstm(x)[0][:, -1])  # type: ignore[method-assign]
    t = inspector.trace(model, torch.randn(6, 100, 8))
    assert _codes(t)[:1] == ["batch-first"], _shown(t)


def test_a_linear_on_a_conv_map_warns_but_not_on_pairwise_features() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Linear(6, 4))
    t = inspector.trace(conv, torch.randn(2, 3, 6, 6))
    assert _codes(t) == ["linear-on-map"] and t.findings[0].module == "2", _shown(t)
    # (B, N, N, F): the last dim is the features; the ReLU before it no longer counts as a map
    pair = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4))
    assert inspector.trace(pair, torch.randn(2, 6, 6, 5)).findings == []


def test_a_reshape_into_the_batch_warns_but_an_index_does_not() -> None:
    class Fold(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(6, 12)
            self.fc = nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(x)
            return self.fc(out.reshape(-1, 12))  # (seq*batch, 12): every step a sample

    torch.manual_seed(0)
    t = inspector.trace(Fold(), torch.randn(9, 4, 6))
    assert _codes(t) == ["batch-changed"], _shown(t)


def test_a_big_init_warns_without_a_norm_after_it_and_not_with_one() -> None:
    torch.manual_seed(0)
    bare = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 4))  # fmt: skip
    nn.init.normal_(bare[2].weight, std=3.0)
    x = torch.randn(8, 32)
    found = [f for f in inspector.trace(bare, x).findings if f.code == "activation-scale"]
    assert [f.module for f in found] == ["2"]
    assert "no normalization layer runs after it" in found[0].details[1]
    assert found[0].details[2].startswith("its weights have std 2.99")
    normed = nn.Sequential(*bare[:4], nn.LayerNorm(32), bare[4])
    assert "activation-scale" not in _codes(inspector.trace(normed, x))


def test_a_small_output_layer_is_quiet_but_a_huge_one_warns() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.randn(8, 16)
    nn.init.normal_(model[2].weight, std=1e-4)  # near-uniform logits at init: the usual
    nn.init.zeros_(model[2].bias)
    assert inspector.trace(model, x).findings == []
    nn.init.normal_(model[2].weight, std=10.0)
    assert _codes(inspector.trace(model, x)) == ["activation-scale"]


def test_zero_init_is_quiet_but_a_dead_layer_upstream_is_named() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.Linear(64, 2))
    nn.init.zeros_(model[2].weight)
    nn.init.zeros_(model[2].bias)  # zero-init by design: its input still varies
    x = torch.randn(4, 8)
    assert inspector.trace(model, x).findings == []
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # now the ReLU is dead and the zeros come from it
    t = inspector.trace(model, x)
    assert _codes(t) == ["dead-units", "constant-output"], _shown(t)
    assert "since 1 (ReLU)" in t.findings[1].details[1]


def test_an_inf_that_reaches_the_output_warns_and_a_mask_does_not() -> None:
    class AddMask(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.masked_fill(torch.ones_like(x, dtype=torch.bool).triu(1), float("-inf"))

    masked = nn.Sequential(nn.Linear(6, 6), AddMask(), nn.Softmax(-1))
    assert inspector.trace(masked, torch.randn(6, 6)).findings == []
    leaky = nn.Sequential(nn.Linear(6, 6), AddMask())
    assert _codes(inspector.trace(leaky, torch.randn(6, 6))) == ["nan-origin"]


def test_exploding_leaves_out_layers_before_a_norm() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))  # fmt: skip
    for conv in (model[0], model[3]):
        nn.init.normal_(conv.weight, std=1e-3)  # tiny weights: |grad|/|weight| ~ 1/|w|^2
    t = inspector.trace(model, torch.randn(4, 3, 8, 8), loss_fn=nn.CrossEntropyLoss(),
                        target=torch.tensor([0, 1, 2, 0]), backward=True)  # fmt: skip
    assert t.find("0").grad.relative() > 100  # type: ignore[union-attr, operator]
    assert t.findings == [], _shown(t)


def test_a_uniformly_small_gain_is_not_a_vanishing_gradient() -> None:
    from tests.healthy_zoo import LayerScaleBlock

    torch.manual_seed(0)
    model = LayerScaleBlock()
    t = inspector.trace(model, torch.randn(2, 6, 32), loss_fn=lambda o, _: o.pow(2).mean(),
                        backward=True)  # fmt: skip
    assert t.findings == [], _shown(t)


# -- what the diagnosis is ---------------------------------------------------------------------


def test_a_silent_shape_bug_comes_before_numeric_findings() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Linear(6, 4))
    nn.init.normal_(model[2].weight, std=30.0)  # the scale warning comes first in the pass
    t = inspector.trace(model, torch.randn(2, 3, 6, 6))
    assert _codes(t) == ["linear-on-map", "activation-scale"], _shown(t)
    assert t.diagnosis is not None and t.diagnosis.code == "linear-on-map"
    assert [is_diagnosis(f) for f in t.findings] == [True, False]


def test_numeric_findings_are_never_a_diagnosis() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 3))  # fmt: skip
    nn.init.normal_(model[2].weight, std=5.0)
    t = inspector.trace(model, torch.randn(8, 16))
    assert "activation-scale" in _codes(t)
    assert not any(is_diagnosis(f) for f in t.findings)
