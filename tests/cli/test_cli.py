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


def test_version_and_exit_codes_in_help() -> None:
    from inspector import __version__

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"torch-inspector {__version__}"
    text = run("--help").stdout
    assert "0    no error" in text and "1    findings" in text and "2    usage" in text
    assert "script's own status (130 when interrupted)" in text
    assert "exit status" in run("check", "--help").stdout


def test_json_dash_writes_to_stdout_and_the_report_to_stderr() -> None:
    result = run("report", "examples/seed_cnn.py", "--json", "-")
    assert result.returncode == 1
    assert json.loads(result.stdout)["format"] == "torch-inspector-trace"
    assert "x = x.view(-1, 3 * 3 * 3)" in result.stderr
    assert not Path(ROOT / "-").exists()
    check = run("check", "examples/seed_cnn.py", "--json", "-")
    assert check.returncode == 1
    doc = json.loads(check.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["error"] * 3 and doc["calls"]
    assert "3 error(s)" in check.stderr


def test_check_json_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = run("check", "examples/gpt.py", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["findings"] == []


def test_each_rank_of_a_launched_job_writes_its_own_json(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    for rank in ("0", "1"):
        env = dict(os.environ, RANK=rank, WORLD_SIZE="2")
        result = run("check", "examples/gpt.py", "--json", str(out), env=env)
        assert result.returncode == 0, result.stderr
    assert not out.exists()
    assert json.loads((tmp_path / "trace.rank0.json").read_text())["findings"] == []
    assert json.loads((tmp_path / "trace.rank1.json").read_text())["findings"] == []


def test_a_loss_without_a_target_is_a_clear_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "no_target.py"
    file.write_text(
        "import torch\nfrom torch import nn\nloss_fn = nn.MSELoss()\n"
        "def build():\n    return nn.Linear(3, 2), (torch.randn(4, 3),)\n"
    )
    for command in ("report", "check"):
        result = run(command, str(file))
        assert result.returncode == 2
        assert "defines loss_fn but no target" in result.stderr
        assert "Traceback" not in result.stderr and "NoneType" not in result.stdout


def test_errors_that_are_not_the_build_are_not_called_build_failures(tmp_path: Path) -> None:
    not_a_model = tmp_path / "not_a_model.py"
    not_a_model.write_text("def build():\n    return 'a string', (1,)\n")
    result = run("check", str(not_a_model))
    assert result.returncode == 2 and "returned a str as the model" in result.stderr
    assert "failed to build" not in result.stderr and "Traceback" not in result.stderr
    layer = run("report", "examples/mlp.py", "--contributions", "nope")
    assert layer.returncode == 2 and "--contributions: no module 'nope'" in layer.stderr
    assert "failed to build" not in layer.stderr
    ascii_out = run("report", "examples/seed_cnn.py", env={"PYTHONIOENCODING": "ascii"})
    assert ascii_out.returncode == 1 and "failed to build" not in ascii_out.stderr
    assert "x = x.view(-1, 3 * 3 * 3)" in ascii_out.stdout


def test_check_on_a_model_that_raises_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "import torch\nfrom torch import nn\n"
        "class M(nn.Module):\n    def forward(self, x):\n        raise ValueError('bad')\n"
        "def build():\n    return M(), (torch.randn(2, 3),)\n"
    )
    result = run("check", str(broken))
    assert result.returncode == 1, result.stderr
    assert "ValueError: bad" in result.stdout and "failed to build" not in result.stderr


def test_run_without_a_script_says_so() -> None:
    result = run("run", "--break", "fc1")
    assert result.returncode == 2
    assert "give the SCRIPT to run" in result.stderr and "args" not in result.stderr


def test_run_without_a_terminal_runs_headless_and_keeps_the_exit_code(tmp_path: Path) -> None:
    code7 = tmp_path / "code7.py"
    code7.write_text("import sys\nprint('exiting 7')\nsys.exit(7)\n")
    result = run("run", str(code7))
    assert result.returncode == 7 and result.stdout == "exiting 7\n"
    interrupted = tmp_path / "interrupted.py"
    interrupted.write_text("print('before')\nraise KeyboardInterrupt\n")
    result = run("run", str(interrupted))
    assert result.returncode == 130
    assert result.stderr.startswith("Traceback") and result.stderr.endswith("KeyboardInterrupt\n")
    assert "runpy" not in result.stderr and "inspector" not in result.stderr  # its own frames


def test_run_headless_explains_a_failure_in_plain_text() -> None:
    result = run("run", "--break", "fc2", "examples/scripts/train_mlp.py", "2")
    assert result.returncode == 0 and "done" in result.stdout
    assert result.stderr.count("torch-inspector: breakpoint fc2: before model.fc2") == 2
    broken = run("run", "examples/scripts/train_broken.py")
    assert broken.returncode == 1 and "step 0 loss" in broken.stdout
    err = broken.stderr
    assert "error in model.0 (Linear)" in err and "model.0 = nn.Linear(10, 16)" in err
    assert err.rstrip().endswith("(4x10 and 8x16)")  # then the script's own traceback
    assert "\x1b[" not in err  # stderr is a file: no escape codes


def test_run_warns_at_the_end_about_a_breakpoint_that_matched_no_module() -> None:
    result = run("run", "--break", "fc9", "--break", "fc2", "examples/scripts/train_mlp.py", "1")
    assert result.returncode == 0 and "done" in result.stdout
    assert result.stderr.rstrip().endswith("torch-inspector: breakpoint 'fc9' matched no module")
    assert "'fc2' matched" not in result.stderr


def test_piped_output_is_not_wrapped_at_80_columns() -> None:
    """`report ... | tee log` with no terminal anywhere: 120 columns, the summary on one
    line, where rich alone would wrap everything at 80."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "report", "examples/seed_cnn.py"],
        capture_output=True, text=True, cwd=ROOT, env={**env, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0].startswith("SeedCNN · 3 calls") and lines[0].endswith("0 warning(s)")
    widths = [len(line) for line in lines]
    assert 80 < max(widths) <= 120
    assert any("x = x.view(-1, 3 * 3 * 3)" in line for line in lines)


def test_breakpoint_in_a_script_run_headless_is_logged_not_pdb(tmp_path: Path) -> None:
    """Under `run` the script's breakpoint() belongs to the inspector: without a terminal the
    stop is written to stderr and the script goes on (pdb would read the script's stdin)."""
    script = tmp_path / "bp.py"
    script.write_text(
        "import sys\nimport torch\nmodel = torch.nn.Linear(2, 3)\nmodel(torch.ones(1, 2))\n"
        "breakpoint()\nmodel(torch.ones(1, 2))\nprint('hook back', sys.breakpointhook is "
        "sys.__breakpointhook__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONBREAKPOINT"}
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "run", str(script)], capture_output=True, text=True,
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "torch-inspector: breakpoint(): before model (Linear) (pass 2)" in result.stderr
    assert "(Pdb)" not in result.stdout
    assert "hook back False" in result.stdout  # the script's own view while it runs
