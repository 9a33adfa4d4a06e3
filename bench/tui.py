"""TUI benchmarks (issue: the TUI) on a 10,000-call trace (a 1000-block transformer stack).

1. First paint: from the engine's event to the tree and detail drawn.
2. Key navigation: `down` in the tree, repaint included, per key (median, p95).
3. Memory: RSS growth of the app over the engine's own (the trace already in memory).

    python bench/tui.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inspector
from bench.models import hidden_states, stack_for_calls
from inspector.engine.control.stepper import Pause
from inspector.tui.app import InspectorApp
from inspector.tui.calltree import CallTree
from inspector.tui.factory import make_app


async def painted(app: InspectorApp) -> None:
    """Wait for the next screen refresh to complete."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    # after inspector.tui, which sets the frame rate as the CLI does (textual reads it once,
    # when first imported: imported above inspector, this bench ran at textual's 60 a second)
    from textual import events

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=60)
    ns = parser.parse_args()
    model = stack_for_calls(ns.calls)
    x = hidden_states(model, 1, 8)
    trace = inspector.trace(model, x)
    last = trace.calls[-1]
    pause = Pause(last, "exit", "step", tuple(trace.calls))
    engine_mb = rss_mb()
    app = make_app()
    first_paint: list[float] = []
    keys: list[float] = []

    async def run() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            start = time.perf_counter()
            app.post_event(pause)
            tree = app.query_one(CallTree)
            while not tree.has(last.seq) or app.pause is None:
                await asyncio.sleep(0.001)
            await painted(app)
            first_paint.append((time.perf_counter() - start) * 1e3)
            await pilot.press("home")
            for _ in range(ns.keys):
                selected = app.selected
                start = time.perf_counter()
                app.post_message(events.Key("down", None))
                while app.selected == selected:
                    await asyncio.sleep(0.0002)
                await painted(app)
                keys.append((time.perf_counter() - start) * 1e3)

    asyncio.run(run())
    app_mb = rss_mb() - engine_mb
    p95 = statistics.quantiles(keys, n=20)[-1]
    print(f"{len(trace.calls)} calls: first paint {first_paint[0]:.0f} ms; key navigation "
          f"median {statistics.median(keys):.1f} ms, p95 {p95:.1f} ms; app memory "
          f"+{app_mb:.0f} MB over the engine's {engine_mb:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
