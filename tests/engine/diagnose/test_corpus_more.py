"""The corpus through the dry run: `inspector.check` on fake tensors gives the same advice
as the real run (tests/engine/diagnose/test_corpus.py checks the real run)."""

from __future__ import annotations

import sys
import warnings

import pytest

import inspector
from tests.broken_models import Broken
from tests.broken_models_more import MORE
from tests.engine.diagnose.test_corpus import _hf_cases, check_words, diagnose_case

CASES = MORE + _hf_cases()  # the first corpus's dry runs: tests/engine/dryrun

# Position ids computed from the token values inside the model (RoBERTa counts from
# padding_idx + 1 with a cumsum over the ids), and BCE's check that probabilities lie in
# [0, 1] on a layer's output: fake tensors carry no values to read.
NEEDS_VALUES = {"hf_roberta_positions_offset", "raw_scores_into_bce"}
DRY = [c for c in CASES if c.kind == "error" and c.loss_fn is None and c.name not in NEEDS_VALUES]


@pytest.mark.parametrize("case", DRY, ids=[c.name for c in DRY])
def test_dry_run_gives_the_same_advice(case: Broken) -> None:
    """inspector.check on fake tensors names the same module with the same words."""
    model, args, kwargs = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = [f for f in inspector.check(model, *args, **kwargs) if f.kind == "error"]
    assert found, f"no error found by the dry run for {case.name}"
    assert found[0].module == case.module, str(found[0])
    check_words(case, str(found[0]))


if __name__ == "__main__":  # print every diagnosis of this corpus
    for case in CASES:
        if len(sys.argv) > 1 and not any(a in case.name for a in sys.argv[1:]):
            continue
        trace = diagnose_case(case)
        print("=" * 30, case.name, "|", case.note)
        print(trace.findings[0] if trace.findings else f"NOTHING ({trace.error!r})")
