"""What the TUI tests share: a recording controller, Pilot driving with deadlines, readers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import torch
from textual.pilot import Pilot
from torch import nn

import inspector
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.stepper import Pause
from inspector.tui.app import InspectorApp
from inspector.tui.calltree import CallTree, node_label
from inspector.tui.controller import DebuggerControl, Offline
from inspector.tui.factory import make_app
from inspector.tui.panels import StatusLine

Script = Callable[[Pilot[Any]], Awaitable[None]]


class FakeController(Offline):
    """Records what the app sends; events are injected with app.post_event."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.breakpoints: list[Breakpoint] = []

    def command(self, kind: str, arg: str = "") -> None:
        self.commands.append((kind, arg))

    def set_breakpoints(self, breakpoints: Sequence[Breakpoint]) -> None:
        self.breakpoints = list(breakpoints)


def mlp_trace() -> inspector.Trace:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return inspector.trace(model, torch.randn(3, 4))


def pause_at(t: inspector.Trace, seq: int, phase: str = "enter", reason: str = "step") -> Pause:
    return Pause(t.calls[seq], phase, reason, tuple(t.calls[: seq + 1]))


async def wait_for(pilot: Pilot[Any], check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await pilot.pause(0.02)


def drive(app: InspectorApp, script: Script, size: tuple[int, int] = (100, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await script(pilot)

    asyncio.run(main())


def debugger_app(model: nn.Module, *args: Any, **options: Any) -> tuple[InspectorApp, Any]:
    """The app over a real Debugger (started once the app is mounted), and that debugger."""
    control = DebuggerControl.of(model, *args, **options)
    return make_app(control), control.debugger


def drive_debugger(app: InspectorApp, debugger: Any, script: Script) -> None:
    """drive(), then release the model thread whatever happened."""
    try:
        drive(app, script)
    finally:
        if debugger.stepper is not None:
            debugger.stepper.release()
        debugger.join(10)


def row_text(tree: CallTree, seq: int) -> str:
    call = tree.calls[seq]
    label = node_label(
        call,
        current=seq == tree.current_seq,
        breakpoint=call.path in tree.breakpoints,
        collapsed=seq in tree.collapsed,
    )
    return label.plain


def status(app: InspectorApp) -> str:
    return app.query_one(StatusLine).plain().strip()
