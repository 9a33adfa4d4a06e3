"""The architecture in one direction: engine <- render <- {report, tui} <- cli."""

from __future__ import annotations

import subprocess
import sys

import pytest

# package -> modules it must never load
FORBIDDEN = {
    "inspector": ("rich", "textual"),
    "inspector.engine": ("rich", "textual"),
    "inspector.render": ("textual",),
    "inspector.reporting": ("textual",),
}


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN.items())
def test_package_does_not_load(package: str, forbidden: tuple[str, ...]) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
        "    if not info.name.startswith('inspector.tui'):\n"
        "        importlib.import_module(info.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]\n"
        "print(','.join(sorted(bad)))\n"
    )
    if package == "inspector":  # the top-level package itself, not every subpackage
        code = (
            "import sys, inspector\n"
            f"print(','.join(m for m in sys.modules if m.split('.')[0] in {forbidden!r}))\n"
        )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{package} loaded {out.stdout.strip()}"
