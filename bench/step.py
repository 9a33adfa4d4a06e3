"""Stepping benchmarks (issue: stepping).

1. Keypress to the next call painted: the TUI (headless) on a real model thread; send the key
   event `s` (step into) as the driver does and time until the next pause is on screen (an
   after-refresh callback). Pilot's own waits are not counted: they wait for the process to
   go idle, which with a model thread beside them adds 100+ ms that no user sees.
2. An attached session whose breakpoint never hits, against a plain forward, side by side
   (alternating, medians): hooks stay on every module of ResNet-50 (batch 8, 224x224). The
   same with a NaN watch, which reads every output, beside the floor for that: the plain
   forward with one `torch.sum` of every tensor value a pass with statistics reads
   (bench/floor.py). Goals: attached <= 1.02x, watching for NaN <= the floor.

    python bench/step.py [--quick] [--sessions]    (--sessions: part 2 only)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor import SumReads
from bench.models import hidden_states, images, resnet50, transformer_stack
from inspector.engine.control.breakpoints import Breakpoint
from inspector.engine.control.session import Session
from inspector.tui.app import InspectorApp
from inspector.tui.controller import DebuggerControl
from inspector.tui.factory import make_app


async def painted(app: InspectorApp) -> None:
    """Wait for the next screen refresh to complete."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


class FrameClock:
    """When each screen update of the app ended (the frame written to the driver), and when
    the app finished handling each pause: wraps the two methods, measures nothing else."""

    def __init__(self) -> None:
        self.frames: list[float] = []
        self.paused: list[float] = []

    def install(self) -> None:
        from textual.screen import Screen

        frames, paused = self.frames, self.paused
        update, on_paused = Screen._on_timer_update, InspectorApp.on_paused

        def timed_update(screen: Screen[object]) -> None:
            update(screen)
            frames.append(time.perf_counter())

        def timed_paused(app: InspectorApp, message: object) -> None:
            on_paused(app, message)  # type: ignore[arg-type]
            paused.append(time.perf_counter())

        Screen._on_timer_update = timed_update  # type: ignore[method-assign, assignment]
        InspectorApp.on_paused = timed_paused  # type: ignore[method-assign, assignment]


def keypress_latency(steps: int) -> tuple[list[float], list[float]]:
    """Milliseconds from pressing `s` to the next pause painted, for `steps` presses: (to
    the end of the first frame drawn after the app handled the pause, to a callback queued
    with call_after_refresh once the pause was seen, which adds Textual's callback delay)."""
    from textual import events  # after inspector.tui, which sets the frame rate as the CLI does

    model = transformer_stack(8, d_model=64)
    x = hidden_states(model, 2, 16)
    clock = FrameClock()
    clock.install()
    control = DebuggerControl.of(model, x)
    debugger = control.debugger
    app = make_app(control)
    frame_times: list[float] = []
    callback_times: list[float] = []

    async def main() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 30
            while app.pause is None:
                assert time.monotonic() < deadline, "no first pause"
                await asyncio.sleep(0.001)
            for _ in range(steps):
                before = app.pause
                assert before is not None
                start = time.perf_counter()
                app.post_message(events.Key("s", "s"))  # what the driver does for a keypress
                while app.pause is None or app.pause is before:
                    assert time.perf_counter() - start < 10, "no pause after the key"
                    await asyncio.sleep(0.0002)  # a short sleep releases the GIL; a spin would not
                await painted(app)
                callback_times.append((time.perf_counter() - start) * 1e3)
                handled = next(t for t in clock.paused if t > start)
                while not any(t > handled for t in clock.frames):
                    await asyncio.sleep(0.0002)
                drawn = next(t for t in clock.frames if t > handled)
                frame_times.append((drawn - start) * 1e3)
            await pilot.press("q")

    try:
        asyncio.run(main())
    finally:
        if debugger.stepper is not None:
            debugger.stepper.release()
        debugger.join(10)
    return frame_times, callback_times


TMUX_APP = (
    "import sys; sys.path.insert(0, '.'); import inspector; "
    "from bench.models import transformer_stack, hidden_states; "
    "m = transformer_stack(8, d_model=64); inspector.debug(m, hidden_states(m, 2, 16))"
)


def tmux_latency(steps: int) -> list[float] | None:
    """Milliseconds from `tmux send-keys s` to the new status line in `tmux capture-pane`, in a
    real terminal (120x40); each includes the two tmux commands (a few ms each). None
    without tmux."""
    if shutil.which("tmux") is None:
        return None
    name = f"inspector-bench-{os.getpid()}"
    root = str(Path(__file__).resolve().parent.parent)

    def first_line() -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True
        )
        return out.stdout.splitlines()[0] if out.stdout else ""

    command = f'cd {root} && unset CI && {sys.executable} -c "{TMUX_APP}"; sleep 5'
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command], check=True
    )
    times: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while "paused" not in first_line():
            assert time.monotonic() < deadline, "the debugger did not open in tmux"
            time.sleep(0.1)
        for _ in range(steps):
            before = first_line()
            start = time.perf_counter()
            subprocess.run(["tmux", "send-keys", "-t", name, "s"], check=True)
            while True:
                now = first_line()
                if now != before and "paused" in now:
                    break
                assert time.perf_counter() - start < 10, "no pause after the key"
            times.append((time.perf_counter() - start) * 1e3)
            time.sleep(0.05)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return times


def session_overhead(repeats: int, batch: int) -> dict[str, list[float]]:
    """Seconds of each run of plain, attached, watching (attached with a NaN watch) and
    floor, in rotating order.

    Attached: a breakpoint on a module that never runs, so the pass runs free and records
    shapes only. With a NaN watch: `Breakpoint(condition="nan")` reads every output's
    statistics, so they are computed at every call.
    """
    model = resnet50()
    x = images(batch)
    plain: list[float] = []
    attached: list[float] = []
    watched: list[float] = []
    floor: list[float] = []
    reads = SumReads(model)

    def never(pause: object) -> None:
        raise AssertionError("the breakpoint must not hit")

    # Sessions live across a training loop: each gets its own copy of the model, attached
    # once and warmed by one pass, then the three run in turn.
    free, watching = copy.deepcopy(model), copy.deepcopy(model)
    with (
        torch.no_grad(),
        Session(never, free, break_on=Breakpoint("no.such.module")),
        Session(never, watching, break_on=Breakpoint(condition="nan")),
    ):

        def with_reads() -> None:
            with reads:
                model(x)

        runs = [(lambda: model(x), plain), (lambda: free(x), attached)]
        runs += [(lambda: watching(x), watched), (with_reads, floor)]
        for run, _ in runs:
            run()
        for r in range(repeats):
            k = r % len(runs)
            for run, out in runs[k:] + runs[:k]:  # rotate: no variant always first
                start = time.perf_counter()
                run()
                out.append(time.perf_counter() - start)
    return {"plain": plain, "attached": attached, "watching": watched, "floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--sessions", action="store_true", help="the sessions' cost only")
    parser.add_argument("--repeats", type=int, default=None, help="session rounds (9)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    ns = parser.parse_args()
    steps, repeats, batch = (30, 3, 2) if ns.quick else (150, 9, 8)
    repeats = ns.repeats or repeats
    if ns.threads:
        torch.set_num_threads(ns.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if ns.sessions:
        print_sessions(repeats, batch)
        return
    frames, callbacks = keypress_latency(steps)
    for label, times in (("frame drawn", frames), ("after-refresh callback", callbacks)):
        p95 = statistics.quantiles(times, n=20)[-1]
        print(
            f"keypress to next call painted (headless, 120x40, {steps} steps), {label}: "
            f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms"
        )
    in_tmux = tmux_latency(60)
    if in_tmux is None:
        print("tmux not installed: no real-terminal figure")
    else:
        p95 = statistics.quantiles(in_tmux, n=20)[-1]
        print(
            f"keypress to next call painted in tmux (send-keys to capture-pane, 60 steps): "
            f"median {statistics.median(in_tmux):.1f} ms, p95 {p95:.1f} ms"
        )
    print_sessions(repeats, batch)


def print_sessions(repeats: int, batch: int) -> None:
    """Attached (breakpoint never hit: shapes while running free), watching for NaN
    (statistics of every output) and the floor (one torch.sum of each value read), each as
    the median of its paired ratios to the plain run of the same round, and fastest runs."""
    times = session_overhead(repeats, batch)
    plain = times["plain"]
    median = statistics.median(plain) * 1e3
    print(f"ResNet-50 b{batch}: plain median {median:.0f} ms, {repeats} rounds")
    for name in ("attached", "watching", "floor"):
        paired = statistics.median(a / b for a, b in zip(times[name], plain, strict=True))
        fastest = min(times[name]) / min(plain)
        print(f"  {name:<9} paired {paired:.3f}x, fastest runs {fastest:.3f}x")
    print("  goals: attached <= 1.02x; watching <= the floor")


if __name__ == "__main__":
    main()
