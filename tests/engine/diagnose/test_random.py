"""Random MLP/CNN stacks with one planted wrong size: always localized to the right module,
with the right number in the fix. And diagnose() never raises, whatever it is given."""

from __future__ import annotations

import re

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import inspector

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def _numbers(texts: tuple[str, ...]) -> set[str]:
    return {n for t in texts for n in re.findall(r"\d+", t)}


@SETTINGS
@given(
    widths=st.lists(st.integers(2, 32), min_size=3, max_size=7),
    data=st.data(),
)
def test_mlp_with_one_wrong_in_features(widths: list[int], data: st.DataObject) -> None:
    planted = data.draw(st.integers(1, len(widths) - 2), label="planted layer")
    wrong = data.draw(st.integers(1, 40).filter(lambda w: w != widths[planted]), label="wrong")
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        in_f = wrong if i == planted else widths[i]
        layers += [nn.Linear(in_f, widths[i + 1]), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    diag = inspector.diagnose(model, torch.randn(3, widths[0]))
    assert diag is not None
    assert diag.module == str(2 * planted), str(diag)
    assert str(widths[planted]) in _numbers(diag.fixes), str(diag)


@SETTINGS
@given(
    channels=st.lists(st.integers(1, 12), min_size=3, max_size=6),
    size=st.integers(4, 12),
    data=st.data(),
)
def test_cnn_with_one_wrong_in_channels(
    channels: list[int], size: int, data: st.DataObject
) -> None:
    planted = data.draw(st.integers(1, len(channels) - 2), label="planted conv")
    wrong = data.draw(st.integers(1, 16).filter(lambda c: c != channels[planted]), label="wrong")
    layers: list[nn.Module] = []
    for i in range(len(channels) - 1):
        c_in = wrong if i == planted else channels[i]
        layers += [nn.Conv2d(c_in, channels[i + 1], 3, padding=1), nn.ReLU()]
    model = nn.Sequential(*layers)
    diag = inspector.diagnose(model, torch.randn(2, channels[0], size, size))
    assert diag is not None
    assert diag.module == str(2 * planted), str(diag)
    assert str(channels[planted]) in _numbers(diag.fixes), str(diag)


@SETTINGS
@given(
    channels=st.integers(1, 8),
    size=st.integers(4, 16),
    pools=st.integers(0, 2),
    wrong=st.integers(1, 300),
)
def test_cnn_head_with_wrong_in_features(channels: int, size: int, pools: int, wrong: int) -> None:
    side = size
    for _ in range(pools):
        side //= 2
    features = channels * side * side
    if wrong == features or side == 0:
        return
    model = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        *[nn.MaxPool2d(2) for _ in range(pools)],
        nn.Flatten(),
        nn.Linear(wrong, 5),
    )
    diag = inspector.diagnose(model, torch.randn(2, 3, size, size))
    assert diag is not None
    assert diag.module == str(pools + 2), str(diag)
    assert f"nn.Linear({features}, 5)" in diag.fixes[0], str(diag)


class Anything(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.fc(*args, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    args=st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.lists(st.floats(allow_nan=True), max_size=3),
            st.builds(lambda n, m: torch.randn(n, m), st.integers(0, 3), st.integers(0, 6)),
            st.builds(lambda n: torch.randint(0, 5, (n,)), st.integers(0, 4)),
            st.just(torch.empty(2, 4, device="meta")),
        ),
        max_size=3,
    )
)
def test_diagnose_never_raises(args: list[object]) -> None:
    diag = inspector.diagnose(Anything(), *args)
    if diag is not None:
        assert diag.kind in ("error", "warning")
        assert str(diag)
