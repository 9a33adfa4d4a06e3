"""No false alarms on random-init Hugging Face models: tiny configs, eval and training.

Each architecture is built from a config (nothing downloaded) with the library's own init:
0.02-std weights in narrow widths, zero-init position biases, small heads, MoE routers,
BatchNorm convs. A warning on any of them is a false alarm, forward or backward.
"""

from __future__ import annotations

import warnings

import pytest

import inspector
from tests.healthy_zoo import HFCase, hf_cases

pytest.importorskip("transformers")

CASES = hf_cases()


pytestmark = pytest.mark.usefixtures("quiet_transformers")


def _shown(t: inspector.Trace) -> str:
    return "\n".join(str(f) for f in t.findings)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_eval_pass_is_quiet(case: HFCase) -> None:
    model, inputs, _ = case.build()
    model.eval()
    t = inspector.trace(model, **inputs)
    assert t.error is None, t.error
    assert t.findings == [], _shown(t)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_training_step_is_quiet(case: HFCase) -> None:
    model, _, inputs = case.build()
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own notes on tiny configs
        t = inspector.trace(model, backward=True, **inputs)
    assert t.error is None, t.error
    assert any(c.grad is not None for c in t.calls), "the backward pass was recorded"
    assert t.findings == [], _shown(t)
