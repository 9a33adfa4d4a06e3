"""`inspector.report()` and headless `inspector.debug()` work any number of times per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import io
    from contextlib import redirect_stdout

    import torch
    from torch import nn

    import inspector
    import inspector.reporting  # the report layer: importing it must not hide the function

    model, x = nn.Linear(4, 2), torch.randn(3, 4)
    broken = nn.Sequential(nn.Linear(4, 8), nn.Linear(7, 2))
    for _ in range(3):
        with redirect_stdout(io.StringIO()) as out:
            assert isinstance(inspector.report(model, x), inspector.Trace)
            assert inspector.debug(model, x).shape == (3, 2)
            try:
                inspector.debug(broken, x)
            except RuntimeError as exc:  # the model's own exception, re-raised
                assert "mat1 and mat2" in str(exc)
            else:
                raise AssertionError("debug() returned on a failing model")
        assert "No findings." in out.getvalue() and "mat1 and mat2" in out.getvalue()
    assert callable(inspector.report)
    print("ok")
    """
)


def test_report_and_headless_debug_work_every_time() -> None:
    # A fresh interpreter, no terminal: the order of imports is the one a user's script has.
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
