"""The second corpus: module, line and numbers as in test_corpus, plus the words a right fix
needs (the input at fault, the transpose) and the misleading fix that must not be offered."""

from __future__ import annotations

import inspect
import re
import sys
import warnings

import pytest

import inspector
from tests.broken_models import Broken
from tests.broken_models_more import MORE

MARKER = "# " + "BUG"


def _hf_cases() -> list[Broken]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return []
    from tests.broken_models_hf import HF

    return HF


CASES = MORE + _hf_cases()
ERRORS = [c for c in CASES if c.kind == "error"]
WARNINGS = [c for c in CASES if c.kind == "warning"]
TAUTOLOGY = re.compile(r"(?<![\d*(, ])(\d+) = \1(?![\d*])")


def _diagnose(case: Broken) -> inspector.Trace:
    model, args, kwargs = case.build()
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return inspector.trace(model, *args, **extra, **kwargs)


def _bug_line(case: Broken) -> int | None:
    """The marked line in one of the case's own model classes; None when the marker sits on
    the line that builds an input (the model is a library's)."""
    model, _, _ = case.build()
    home = case.build.__module__
    for module in model.modules():
        for cls in type(module).__mro__:
            if cls.__module__ != home:
                continue
            lines, start = inspect.getsourcelines(cls)
            for offset, text in enumerate(lines):
                if text.rstrip().endswith(MARKER):
                    return start + offset
    return None


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


def _check_words(case: Broken, text: str) -> None:
    missing = [w for w in case.words if w not in text]
    assert not missing, f"diagnosis lacks {missing}:\n{text}"
    offered = [w for w in case.absent if w in text]
    assert not offered, f"misleading advice {offered}:\n{text}"
    assert not TAUTOLOGY.search(text), f"a restated number:\n{text}"


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
def test_error_is_localized_and_fixed(case: Broken) -> None:
    t = _diagnose(case)
    assert t.error is not None, "the case must fail"
    diag = t.diagnosis
    assert diag is not None and diag.kind == "error"
    assert diag.module == case.module, str(diag)
    if case.op is not None:
        assert diag.op is not None and diag.op.name == case.op, str(diag)
    expected_line = _bug_line(case)
    if expected_line is not None:
        assert diag.line is not None, str(diag)
        assert diag.line.lineno == expected_line, str(diag)
    assert diag.code != "unexplained", str(diag)
    text = " ".join(diag.fixes) + " " + " ".join(diag.details) + " " + diag.summary
    missing = [n for n in case.fix_numbers if n not in _numbers(text)]
    assert not missing, f"fix lacks {missing}:\n{diag}"
    assert diag.fixes, str(diag)
    _check_words(case, str(diag))


@pytest.mark.parametrize("case", WARNINGS, ids=[c.name for c in WARNINGS])
def test_silent_bug_is_warned(case: Broken) -> None:
    t = _diagnose(case)
    assert t.error is None
    found = [f for f in t.findings if f.kind == "warning"]
    assert found, f"no warning for {case.name}"
    diag = found[0]
    assert diag.module == case.module, str(diag)
    text = " ".join(diag.fixes) + " " + " ".join(diag.details) + " " + diag.summary
    missing = [n for n in case.fix_numbers if n not in _numbers(text)]
    assert not missing, f"warning lacks {missing}:\n{diag}"
    _check_words(case, str(diag))


def test_no_restated_numbers_in_the_first_corpus() -> None:
    from tests.broken_models import CORPUS

    for case in CORPUS:
        t = _diagnose(case)
        for f in t.findings[:1]:
            assert not TAUTOLOGY.search(str(f)), f"{case.name}: {f}"


# Position ids computed from the token values inside the model (RoBERTa counts from
# padding_idx + 1 with a cumsum over the ids): fake tensors carry no values to read the start.
NEEDS_VALUES = {"hf_roberta_positions_offset"}
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
    _check_words(case, str(found[0]))


if __name__ == "__main__":  # print every diagnosis of this corpus
    for case in CASES:
        if len(sys.argv) > 1 and not any(a in case.name for a in sys.argv[1:]):
            continue
        trace = _diagnose(case)
        print("=" * 30, case.name, "|", case.note)
        print(trace.findings[0] if trace.findings else f"NOTHING ({trace.error!r})")
