"""No false alarms: the healthy zoo gives no finding, in eval and in train mode."""

from __future__ import annotations

import pytest
import torch

import inspector
from tests.models import ZOO, Case

CASES = list(ZOO.values())


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_findings(case: Case, train: bool) -> None:
    model, args, kwargs = case.build()
    model.train(train)
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}
    t = inspector.trace(model, *args, **extra, **kwargs)
    assert t.error is None
    assert t.findings == [], "\n".join(str(f) for f in t.findings)


@pytest.mark.parametrize(
    "make",
    [
        # attention head split and merge keep the batch
        lambda: (
            torch.nn.MultiheadAttention(16, 4, batch_first=True),
            (torch.randn(2, 5, 16),) * 3,
        ),
        # patch embedding: (B, C, H, W) -> (B, N, D)
        lambda: (
            torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Flatten(2)),
            (torch.randn(2, 3, 16, 16),),
        ),
        # pixel shuffle
        lambda: (
            torch.nn.Sequential(torch.nn.Conv2d(4, 16, 1), torch.nn.PixelShuffle(2)),
            (torch.randn(2, 4, 5, 5),),
        ),
        # per-position classifier: (B, T, C) Linear on the last dim
        lambda: (torch.nn.Linear(8, 3), (torch.randn(2, 7, 8),)),
        # seq-first LSTM used consistently
        lambda: (torch.nn.LSTM(4, 6), (torch.randn(7, 2, 4),)),
    ],
    ids=["mha", "patch-embed", "pixel-shuffle", "per-position-linear", "seq-first-lstm"],
)
def test_shape_tricks_stay_quiet(make) -> None:  # type: ignore[no-untyped-def]
    model, args = make()
    t = inspector.trace(model, *args)
    assert t.error is None and t.findings == []
