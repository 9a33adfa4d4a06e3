"""Small models: what a trace costs where the fixed cost of each recorded call dominates.

A 2-layer transformer stack (bench/models.py, d_model 64, 4 heads, seq 16, 22 module calls)
on one thread (`torch.set_num_threads(1)`), under `torch.no_grad()`. Every variant runs in
the same process, in rotating order, many rounds; the table gives each variant's median
time and its paired ratio (the median over rounds of its time over the plain forward's in
the same round), with the 10th-90th percentile of that ratio as its spread.

  plain               model(x)
  no-op hooks         model(x) with a pre and a post hook on every module that do nothing:
                      torch's slow call path, the floor of any module hook
  minimal record      model(x) with hooks that keep the least a record of the call needs:
                      the module's path, the shapes of its tensor inputs, the caller's
                      file and line, the start and end times, the output's shape and dtype
                      (one tuple appended per hook): the floor of a recorder made of
                      Python module hooks
  recorder            model(x) with the recorder's hooks on (attached before, detached
                      after, outside the timing): the per-call cost alone
  trace(stats=False)  inspector.trace(model, x, stats=False): hooks on, the pass, hooks off,
                      the findings
  trace(stats=True)   the same with statistics
  session             model(x) in an attached session whose breakpoint never hits (one
                      session, attached once): shapes only while running free

The parts of a trace beside the forward (hooks on and off, the findings) are timed alone:
"fixed" lines ("hooks on, first": attaching to a model not traced before, which walks it;
"hooks on": to the same model a third time, whose walks the second attach kept, checked
now). Goals: trace(stats=True) <= 1.3x, trace(stats=False) <= 1.15x.

Usage: python bench/small.py [--batch N] [--rounds N] [--layers N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

import inspector
from bench.models import transformer_stack


def noop_hooks(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    def pre(module: nn.Module, args: object, kwargs: object) -> None:
        return None

    def post(module: nn.Module, args: object, kwargs: object, output: object) -> None:
        return None

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True, always_call=True))
    return handles


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def recorder_pass(model: nn.Module, x: torch.Tensor, stats: bool) -> Callable[[], float]:
    """The forward alone with a recorder's hooks on (attach and detach not timed)."""
    from inspector.engine.capture.recorder import Recorder

    def run() -> float:
        recorder = Recorder(stats=stats)
        try:
            recorder.attach(model)
            return timed(lambda: model(x))
        finally:
            recorder.detach()

    return run


def fixed_parts(model: nn.Module, x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median seconds of the parts of a trace that do not grow with the forward's work."""
    from inspector.engine.capture.recorder import Recorder

    trace_module = sys.modules["inspector.engine.trace"]
    try:  # attaching to a model seen before reuses its walks (checked); a first attach walks
        from inspector.engine.capture import layout

        layouts: dict[int, object] = layout._LAYOUTS
    except ImportError:  # a tree from before that
        layouts = {}
    parts: dict[str, list[float]] = {
        "hooks on": [],
        "hooks on, first": [],
        "hooks off": [],
        "findings": [],
    }
    findings = trace_module.findings_of
    for _ in range(rounds):
        layouts.clear()
        recorder = Recorder(stats=False)
        parts["hooks on, first"].append(timed(lambda: recorder.attach(model)))  # noqa: B023
        recorder.detach()
        recorder = Recorder(stats=False)  # the second attach keeps the walks, untimed
        recorder.attach(model)
        recorder.detach()
        recorder = Recorder(stats=False)
        start = time.perf_counter()
        recorder.attach(model)
        parts["hooks on"].append(time.perf_counter() - start)
        model(x)
        result = inspector.Trace(recorder.calls, output=None)
        parts["hooks off"].append(timed(recorder.detach))
        start = time.perf_counter()
        findings(result, recorder, None, False)
        parts["findings"].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in parts.items()}


def minimal_record_hooks(
    model: nn.Module, log: list[tuple[object, ...]]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that append the least a call's record holds to `log` (see the docstring)."""
    paths = {id(m): name for name, m in model.named_modules()}
    clock, frame_of, tensor = time.perf_counter, sys._getframe, torch.Tensor

    def pre(module: nn.Module, args: tuple[object, ...], kwargs: object) -> None:
        caller = frame_of(2)
        shapes = tuple([tuple(a.shape) if isinstance(a, tensor) else None for a in args])
        log.append((paths[id(module)], shapes, caller.f_code.co_filename, caller.f_lineno,
                    clock()))  # fmt: skip

    def post(module: nn.Module, args: object, kwargs: object, output: object) -> None:
        if isinstance(output, tensor):
            log.append((tuple(output.shape), output.dtype, clock()))
        else:
            log.append((None, None, clock()))

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True, always_call=True))
    return handles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = transformer_stack(args.layers, d_model=64, n_heads=4, max_seq=16)
    x = torch.randn(args.batch, 16, 64, generator=torch.Generator().manual_seed(0))
    from inspector.engine.control.breakpoints import Breakpoint
    from inspector.engine.control.session import Session

    def never(pause: object) -> None:
        raise AssertionError("the breakpoint must not hit")

    handles: list[torch.utils.hooks.RemovableHandle] = []
    hooked = transformer_stack(args.layers, d_model=64, n_heads=4, max_seq=16)
    minimal = transformer_stack(args.layers, d_model=64, n_heads=4, max_seq=16)
    log: list[tuple[object, ...]] = []

    def minimal_pass() -> float:
        log.clear()
        return timed(lambda: minimal(x))

    attached = transformer_stack(args.layers, d_model=64, n_heads=4, max_seq=16)
    rec_shapes, rec_stats = recorder_pass(model, x, False), recorder_pass(model, x, True)
    variants: list[tuple[str, Callable[[], float]]] = [
        ("plain", lambda: timed(lambda: model(x))),
        ("no-op hooks", lambda: timed(lambda: hooked(x))),
        ("minimal record", minimal_pass),
        ("recorder, shapes", rec_shapes),
        ("recorder, stats", rec_stats),
        ("trace(stats=False)", lambda: timed(lambda: inspector.trace(model, x, stats=False))),
        ("trace(stats=True)", lambda: timed(lambda: inspector.trace(model, x, stats=True))),
        ("session", lambda: timed(lambda: attached(x))),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    session = Session(never, attached, break_on=Breakpoint("no.such.module"))
    with torch.no_grad(), session:
        handles = noop_hooks(hooked) + minimal_record_hooks(minimal, log)
        try:
            for _, fn in variants * 10:  # warm-up
                fn()
            gc.collect()
            for r in range(args.rounds):
                k = r % len(variants)
                for name, fn in variants[k:] + variants[:k]:
                    times[name].append(fn())
            fixed = fixed_parts(model, x, min(args.rounds, 100))
        finally:
            for handle in handles:
                handle.remove()
    calls = len(inspector.trace(model, x, stats=False))
    base = statistics.median(times["plain"])
    print(
        f"transformer_stack({args.layers}, d_model 64), input ({args.batch}, 16, 64), "
        f"{calls} calls, 1 thread, {args.rounds} rotating rounds, torch.no_grad()"
    )
    print(f"  {'variant':<20} {'median us':>10} {'paired':>8} {'p10-p90':>13} {'us/call':>8}")
    for name, ts in times.items():
        ratios = sorted(a / b for a, b in zip(ts, times["plain"], strict=True))
        lo, hi = ratios[len(ratios) // 10], ratios[9 * len(ratios) // 10]
        per_call = (statistics.median(ts) - base) / calls * 1e6
        print(
            f"  {name:<20} {statistics.median(ts) * 1e6:>10.0f} "
            f"{statistics.median(ratios):>7.2f}x {lo:>6.2f}-{hi:.2f}x {per_call:>8.1f}"
        )
    for name, seconds in fixed.items():
        print(f"  fixed: {name:<16} {seconds * 1e6:>8.0f} us")


if __name__ == "__main__":
    main()
