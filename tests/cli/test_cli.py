"""`python -m inspector`: report and check on files, exit codes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "80", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inspector", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
    )


def test_report_of_the_seed_cnn_names_the_view_and_fits_80_columns(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    result = run("report", "examples/seed_cnn.py", "--json", str(out), env={"NO_COLOR": "1"})
    assert result.returncode == 1  # the pass failed
    text = result.stdout
    assert "conv1" in text and "(4, 3, 32, 32) → (4, 3, 32, 32)" in text
    assert "x = x.view(-1, 3 * 3 * 3)" in text and "768" in text
    assert "\x1b[" not in text  # NO_COLOR and a pipe: plain text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert json.loads(out.read_text())["format"] == "torch-inspector-trace"


def test_report_of_a_healthy_model_exits_0() -> None:
    result = run("report", "examples/resnet.py")
    assert result.returncode == 0, result.stderr
    assert "No findings." in result.stdout and "layer2" in result.stdout


def test_check_exit_codes() -> None:
    bad = run("check", "examples/seed_cnn.py")
    assert bad.returncode == 1
    assert "3 error(s)" in bad.stdout
    good = run("check", "examples/gpt.py")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 error(s)" in good.stdout


def test_missing_file_and_missing_build_are_usage_errors(tmp_path: Path) -> None:
    missing = run("report", "no_such_file.py")
    assert missing.returncode == 2
    assert "no such file: no_such_file.py" in missing.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    result = run("check", str(empty))
    assert result.returncode == 2
    assert "defines no build() function" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_whose_build_raises_shows_its_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def build():\n    raise ValueError('no data here')\n")
    result = run("report", str(broken))
    assert result.returncode == 2
    assert "ValueError: no data here" in result.stderr


def test_report_with_gradients_names_where_they_vanish() -> None:
    result = run("report", "examples/deep_sigmoid.py", env={"NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr  # the file asks for backward itself
    text = result.stdout
    assert "grad rms" in text and "vanishing gradients" in text
    assert "threshold grad_vanish: 0.0001" in " ".join(text.split())
    assert max(len(line) for line in text.splitlines()) <= 80
    mlp = run("report", "examples/mlp.py", "--backward")
    assert mlp.returncode == 0 and "grad rms" in mlp.stdout and "No findings." in mlp.stdout
    no_loss = run("report", "examples/lstm.py", "--backward")
    assert no_loss.returncode == 2 and "give loss_fn and target" in no_loss.stderr
    assert "Traceback" not in no_loss.stderr
