"""A first layer fed the model's own input: the layer or the data may be wrong; both said."""

from __future__ import annotations

import torch
from torch import nn

import inspector


class Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_the_data_is_named_beside_the_layer_when_the_input_reaches_it_unchanged() -> None:
    diag = inspector.diagnose(Wrapped(), torch.randn(4, 8))
    assert diag is not None and diag.module == "body.0"
    assert diag.fixes[0].startswith("body.0 = nn.Linear(8, 16)")
    assert diag.fixes[1] == ("or, if body.0 is right (in_features=10), the data is wrong: the "
                             "model's input (4, 8) should have 10 features per sample")  # fmt: skip


def test_a_layer_fed_by_another_layer_gets_no_data_alternative() -> None:
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(12, 2))
    diag = inspector.diagnose(model, torch.randn(4, 10))
    assert diag is not None and diag.module == "2"
    assert not any("the data is wrong" in f for f in diag.fixes)


def test_an_input_changed_before_the_layer_gets_no_data_alternative() -> None:
    class Scales(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = nn.Identity()
            self.fc = nn.Linear(10, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.pre(x)[:, :8])

    diag = inspector.diagnose(Scales(), torch.randn(4, 10))
    assert diag is not None and diag.module == "fc"
    assert not any("the data is wrong" in f for f in diag.fixes)


def test_a_layer_that_is_the_whole_model_is_named_model_in_its_fix() -> None:
    """The root's path is empty: its fix read ` = nn.LSTM(8, 16, ...)`."""
    cases = [
        (nn.LSTM(10, 16, batch_first=True), torch.randn(4, 5, 8), "model = nn.LSTM(8, 16, ...)"),
        (nn.BatchNorm1d(10), torch.randn(4, 8), "model = nn.BatchNorm1d(8)"),
        (nn.Linear(10, 2), torch.randn(4, 8), "model = nn.Linear(8, 2)"),
    ]
    for model, x, fix in cases:
        diag = inspector.diagnose(model, x)
        assert diag is not None and diag.module == "" and diag.fixes[0] == fix, str(diag)


def test_a_first_rnn_fed_the_model_input_names_the_data_too() -> None:
    diag = inspector.diagnose(nn.LSTM(10, 16, batch_first=True), torch.randn(4, 5, 8))
    assert diag is not None and diag.fixes[1] == (
        "or, if model is right (input_size=10), the data is wrong: the model's input "
        "(4, 5, 8) should have 10 features per step"
    )

    class Embedded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 12)
            self.rnn = nn.GRU(10, 16, batch_first=True)

        def forward(self, x: torch.Tensor) -> object:
            return self.rnn(self.proj(x))

    diag = inspector.diagnose(Embedded(), torch.randn(4, 5, 8))
    assert diag is not None and diag.module == "rnn" and len(diag.fixes) == 1, str(diag)
