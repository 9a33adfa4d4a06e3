"""The wheel, installed in a fresh virtualenv and run outside the repo: what a new user gets.

The venv sees the dev environment's packages (torch, textual, rich, numpy) through a plain
path entry, whose .pth files are not processed: the checkout's editable install stays out
and `inspector` can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.wheel


def sh(*argv: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=300,
        stdin=subprocess.DEVNULL, env={**clean, "COLUMNS": "80", "NO_COLOR": "1", **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build writes build/ and *.egg-info into the checkout.
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "build")
    shutil.copytree(ROOT / "inspector", source / "inspector", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "-w", tmp / "dist", source, cwd=tmp)  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp / "dist").glob("torch_inspector-*.whl"))
    env = tmp / "venv"
    made = sh(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", env,
              cwd=tmp)  # fmt: skip
    assert made.returncode == 0, made.stderr
    packages = next((env / "lib").glob("python*/site-packages"))
    (packages / "dev_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = sh(sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install",
                   "--no-deps", "--no-index", wheel, cwd=tmp)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return env


def test_the_installed_package_is_the_wheel(venv: Path, tmp_path: Path) -> None:
    where = sh(venv / "bin" / "python", "-c", "import inspector; print(inspector.__file__)",
               cwd=tmp_path)  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv)), where.stdout


def test_version_demo_and_check_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    from inspector import __version__

    cli = venv / "bin" / "torch-inspector"
    version = sh(cli, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"torch-inspector {__version__}", version.stderr
    demo = sh(cli, "demo", cwd=tmp_path)  # no terminal: the report of the demo model
    assert demo.returncode == 0, demo.stderr
    assert "<demo>/seed_cnn.py:21 in forward" in demo.stdout
    assert "x = x.view(-1, 3 * 3 * 3)" in demo.stdout and "768" in demo.stdout
    file = tmp_path / "mine.py"
    file.write_text("from inspector.demo import build\n")
    check = sh(cli, "check", file, cwd=tmp_path)
    assert check.returncode == 1 and "3 error(s)" in check.stdout, check.stderr


def test_the_api_tour_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    tour = (
        "import inspector\nfrom inspector.demo import build\nmodel, (x,) = build()\n"
        "t = inspector.trace(model, x)\nprint(t.diagnosis)\n"
    )
    result = sh(venv / "bin" / "python", "-c", tour, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "at <demo>/seed_cnn.py:21: x = x.view(-1, 3 * 3 * 3)" in result.stdout
