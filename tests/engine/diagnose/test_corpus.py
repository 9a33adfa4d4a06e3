"""Every broken model of the corpus is diagnosed: module (or input), line, the numbers of the
fix, the words a right fix needs (the input at fault, the transpose) and none of the
misleading fix that must not be offered. The corpus: tests/broken_models.py, its second part
tests/broken_models_more.py and, with transformers installed, tests/broken_models_hf.py."""

from __future__ import annotations

import inspect
import re
import warnings

import pytest

import inspector
from inspector.engine.api import explain_traceback
from inspector.engine.records import Diagnosis
from tests.broken_models import CORPUS, Broken
from tests.broken_models_more import MORE

MARKER = "# " + "BUG"


def _hf_cases() -> list[Broken]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return []
    from tests.broken_models_hf import HF

    return HF


CASES = CORPUS + MORE + _hf_cases()
ERRORS = [c for c in CASES if c.kind == "error"]
WARNINGS = [c for c in CASES if c.kind == "warning"]
TAUTOLOGY = re.compile(r"(?<![\d*(, ])(\d+) = \1(?![\d*])")


def diagnose_case(case: Broken) -> inspector.Trace:
    model, args, kwargs = case.build()
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return inspector.trace(model, *args, **extra, **kwargs)


def _bug_line(case: Broken) -> int | None:
    """The marked line in one of the case's own model classes; None when the marker sits on
    the line that builds an input (the model is a library's) or in the corpus list."""
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


def check_words(case: Broken, text: str) -> None:
    missing = [w for w in case.words if w not in text]
    assert not missing, f"diagnosis lacks {missing}:\n{text}"
    offered = [w for w in case.absent if w in text]
    assert not offered, f"misleading advice {offered}:\n{text}"
    assert not TAUTOLOGY.search(text), f"a restated number:\n{text}"


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
def test_error_is_localized_and_fixed(case: Broken) -> None:
    t = diagnose_case(case)
    assert t.error is not None, "the case must fail"
    check_diagnosis(case, t.diagnosis)


EXPLAINED = [c for c in ERRORS if c.loss_fn is None]


@pytest.mark.parametrize("case", EXPLAINED, ids=[c.name for c in EXPLAINED])
def test_explain_gives_the_same_diagnosis(case: Broken) -> None:
    """`with inspector.explain()` records nothing while the model runs: its diagnosis comes
    from the traceback and the walk of each failing forward, and must be as right as the
    trace's."""
    model, args, kwargs = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as raised:
            model(*args, **kwargs)
    check_diagnosis(case, explain_traceback(raised.value, model))


def check_diagnosis(case: Broken, diag: Diagnosis | None) -> None:
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
    check_words(case, str(diag))


@pytest.mark.parametrize("case", WARNINGS, ids=[c.name for c in WARNINGS])
def test_silent_bug_is_warned(case: Broken) -> None:
    t = diagnose_case(case)
    assert t.error is None
    found = [f for f in t.findings if f.kind == "warning"]
    assert found, f"no warning for {case.name}"
    diag = found[0]
    assert diag.module == case.module, str(diag)
    expected_line = _bug_line(case)
    if expected_line is not None:
        assert diag.line is not None and diag.line.lineno == expected_line, str(diag)
    text = " ".join(diag.fixes) + " " + " ".join(diag.details) + " " + diag.summary
    missing = [n for n in case.fix_numbers if n not in _numbers(text)]
    assert not missing, f"warning lacks {missing}:\n{diag}"
    check_words(case, str(diag))
