"""Whole-screen snapshots at 80x24 and 120x40, with deterministic content.

Set INSPECTOR_UPDATE_SNAPSHOTS=1 to rewrite the stored screens after an intended change, and
read the diff before committing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from torch import nn

import inspector
from inspector.demo import build as build_demo
from inspector.engine.control.debugger import Finished
from inspector.engine.control.stepper import Pause
from inspector.engine.records import Call
from inspector.tui.app import InspectorApp
from inspector.tui.factory import make_app

SNAPSHOTS = Path(__file__).parent / "snapshots"
ROOT = Path(__file__).resolve().parents[2]


def screen_text(app: InspectorApp) -> str:
    """The screen as plain text (Textual's screenshot export, as text instead of SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system="truecolor")  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def stable(calls: tuple[Call, ...]) -> tuple[Call, ...]:
    """Records without what differs between runs and machines: durations, absolute paths."""
    return tuple(dataclasses.replace(c, duration_ms=0.0, call_site=None) for c in calls)


def shoot(event: Pause | Finished, size: tuple[int, int], keys: tuple[str, ...] = ()) -> str:
    app = make_app()
    out: list[str] = []

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            app.post_event(event)
            for _ in range(100):
                await pilot.pause(0.02)
                if app.pause is not None or app.finished is not None:
                    break
            for key in keys:
                await pilot.press(key)
            # The last paint may lag on a busy machine (the footer once came a frame late):
            # take the screen once it reads the same twice in a row.
            text, previous = screen_text(app), None
            for _ in range(50):
                if text == previous:
                    break
                await pilot.pause(0.05)
                text, previous = screen_text(app), text
            out.append(text)

    asyncio.run(main())
    return out[0]


def check(name: str, text: str) -> None:
    """The screen equals its stored snapshot. A missing snapshot fails (a test that writes what
    it compares against cannot fail); INSPECTOR_UPDATE_SNAPSHOTS=1 writes it."""
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("INSPECTOR_UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n")
    assert path.exists(), f"no snapshot {path}: run with INSPECTOR_UPDATE_SNAPSHOTS=1, read it"
    assert text + "\n" == path.read_text(), f"{name} changed; see {path}"


def mlp_pause() -> Pause:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    t = inspector.trace(model, torch.randn(4, 6))
    calls = stable(tuple(t.calls))
    running = dataclasses.replace(calls[0], status="running", outputs=None)
    return Pause(calls[3], "exit", "step", (running, *calls[1:]))


def seed_failure(monkeypatch: Any) -> Finished:
    monkeypatch.chdir(ROOT)
    model, args = build_demo()  # its source has the same name on every machine
    t = inspector.trace(model, *args)
    diag = t.findings[0]
    assert diag.line is not None
    t.findings = [dataclasses.replace(diag, exception=None)]
    t.calls = list(stable(tuple(t.calls)))
    return Finished(t)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_paused_mid_pass(size: tuple[int, int]) -> None:
    check(f"paused_{size[0]}x{size[1]}", shoot(mlp_pause(), size))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_failed_pass_problems(size: tuple[int, int], monkeypatch: Any) -> None:
    check(f"failed_{size[0]}x{size[1]}", shoot(seed_failure(monkeypatch), size))


def test_help_screen() -> None:
    check("help_100x30", shoot(mlp_pause(), (100, 30), keys=("question_mark",)))


def test_80x24_shows_help_and_quit_in_the_footer_and_the_help() -> None:
    text = shoot(mlp_pause(), (80, 24), keys=("question_mark",))  # ?: the key help
    footer = text.splitlines()[-1]
    assert "? keys" in footer and "q quit" in footer
    assert "quit the debugger; your program runs on, no stops" in text
    assert "stop your program (KeyboardInterrupt)" in text


def test_80x24_error_box_shows_the_fix_without_scrolling(monkeypatch: Any) -> None:
    text = shoot(seed_failure(monkeypatch), (80, 24))
    assert "❱ 21 x = x.view(-1, 3 * 3 * 3)" in text  # the failing line alone, not 5 wrapped
    lines = text.splitlines()
    fix = next(i for i, line in enumerate(lines) if "→ x = x.flatten(1)" in line)
    assert fix < 23  # above the footer: on screen


def test_capital_j_and_k_scroll_the_error_box_from_the_tree(monkeypatch: Any) -> None:
    failed = seed_failure(monkeypatch)
    top = shoot(failed, (80, 14))
    down = shoot(failed, (80, 14), keys=("J",))
    back = shoot(failed, (80, 14), keys=("J", "K"))
    assert "╭─ ✗ error in (root)" in top and "╭─ ✗ error in (root)" not in down
    assert "the input is the output of pool" in down and "the input is" not in top
    assert back == top
