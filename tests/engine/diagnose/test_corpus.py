"""Every broken model of the corpus is diagnosed: module, line, numbers in the fix."""

from __future__ import annotations

import inspect
import re

import pytest

import inspector
from tests.broken_models import CORPUS, Broken

MARKER = "# " + "BUG"
ERRORS = [c for c in CORPUS if c.kind == "error"]
WARNINGS = [c for c in CORPUS if c.kind == "warning"]


def _diagnose(case: Broken) -> inspector.Trace:
    model, args, kwargs = case.build()
    extra = {}
    if case.loss_fn is not None:
        extra = {"loss_fn": case.loss_fn(), "target": case.target() if case.target else None}
    return inspector.trace(model, *args, **extra, **kwargs)


def _bug_line(case: Broken) -> int | None:
    """The line marked as the bug in the model's source, None if it sits in the corpus list."""
    model, _, _ = case.build()
    for cls in type(model).__mro__:
        if cls.__module__ != "tests.broken_models":
            continue
        lines, start = inspect.getsourcelines(cls)
        for offset, text in enumerate(lines):
            if text.rstrip().endswith(MARKER):
                return start + offset
    for module in model.modules():
        if type(module).__module__ == "tests.broken_models":
            lines, start = inspect.getsourcelines(type(module))
            for offset, text in enumerate(lines):
                if text.rstrip().endswith(MARKER):
                    return start + offset
    return None


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


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
    fixes = " ".join(diag.fixes) + " " + " ".join(diag.details) + " " + diag.summary
    missing = [n for n in case.fix_numbers if n not in _numbers(fixes)]
    assert not missing, f"fix lacks {missing}:\n{diag}"
    assert diag.fixes, str(diag)


@pytest.mark.parametrize("case", WARNINGS, ids=[c.name for c in WARNINGS])
def test_silent_bug_is_warned(case: Broken) -> None:
    t = _diagnose(case)
    assert t.error is None
    warnings = [f for f in t.findings if f.kind == "warning"]
    assert warnings, f"no warning for {case.name}"
    diag = warnings[0]
    assert diag.module == case.module, str(diag)
    expected_line = _bug_line(case)
    if expected_line is not None:
        assert diag.line is not None and diag.line.lineno == expected_line, str(diag)
    text = " ".join(diag.fixes) + " " + " ".join(diag.details) + " " + diag.summary
    missing = [n for n in case.fix_numbers if n not in _numbers(text)]
    assert not missing, f"warning lacks {missing}:\n{diag}"
