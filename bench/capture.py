"""Capture benchmark: what `inspector.trace` costs on top of a plain forward pass.

Models (bench/models.py, seeded, eval mode): ResNet-50 on a (8, 3, 224, 224) batch and 12 GPT
blocks (d_model 768) on (4, 128, 768) hidden states, so one forward takes 0.3-2 s on 2 cores.

Time: every variant runs once as a warm-up, then `--repeats` times, rotating the variants'
order from repeat to repeat (ABCD BCDA ...) so that drift of the machine hits all of them
alike; the table gives the median wall time of each and its ratio to the plain forward's
median. All runs are under `torch.no_grad()`, after `gc.collect()`, with
`torch.set_num_threads` fixed. "paired" is the median over rounds of each variant's time
over the plain forward's in the same round, which a slow spell of a shared machine (one
round) hits alike; on a quiet machine it reads as the ratio of medians. "fastest" is each
variant's fastest run over the plain forward's fastest: the least disturbed runs.

  plain               model(x)
  trace(stats=False)  inspector.trace(model, x, stats=False): shapes, dtypes, devices
  trace(stats=True)   inspector.trace(model, x, stats=True): plus per-tensor statistics
  plain after trace   model(x) again: the hooks are gone, so this must be 1.00x
  floor               model(x) with one `torch.sum` of every tensor value the trace reads
                      (bench/floor.py): what exact statistics cannot go below. The goals:
                      stats=True within 0.02 of the floor's ratio, shapes only <= 1.02x
  torchinfo.summary   torchinfo.summary(model, input_data=x, verbose=0), when installed

Memory: tracemalloc snapshots taken before a stats=True trace and after it, with the trace
alive and its `output` dropped (the model's output is not part of the record), after
`gc.collect()`; a trace run first warms the caches, and allocations made inside torch's own
Python files (the hook dicts keep their grown capacity) are left out, so that what remains is
the Trace. That difference divided by the number of recorded calls is the cost of one call
(target 2 KB); it varies by about +-50 B per call from run to run.

Usage: python bench/capture.py [--quick] [--repeats N] [--threads N] [--only resnet50|gpt]
       [--batch N]
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn
from torch.nn.modules import module as torch_module

import inspector
from bench.floor import SumReads, floor_run
from bench.models import gpt_stack, hidden_states, images, resnet50

DEFAULT_THREADS = torch.get_num_threads()  # torch's own default: the physical cores
BYTES_PER_CALL_TARGET = 2048
PLAIN = "plain"
NOISY_SPREAD = 1.5  # a variant whose slowest run exceeds its fastest by this much was disturbed


@dataclass(frozen=True)
class Workload:
    """A model and its input, as the benchmark runs them."""

    name: str
    model: nn.Module
    x: torch.Tensor

    def describe(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return f"{self.name}: input {tuple(self.x.shape)}, {params / 1e6:.1f}M parameters"


Variant = tuple[str, Callable[[], object]]


def workloads(quick: bool, only: str | None, batch: int = 8) -> list[Workload]:
    """ResNet-50 and the GPT stack; `quick` shrinks them to a smoke test."""
    built = []
    if only in (None, "resnet50"):
        batch, size = (1, 112) if quick else (batch, 224)
        built.append(Workload("resnet50", resnet50(), images(batch, size)))
    if only in (None, "gpt"):
        gpt = gpt_stack(n_layers=2 if quick else 12)
        batch, seq = (1, 32) if quick else (4, 128)
        built.append(Workload(f"gpt-{len(gpt.h)}-layer", gpt, hidden_states(gpt, batch, seq)))
    return built


def load_torchinfo() -> Callable[..., Any] | None:
    """`torchinfo.summary`, or None when torchinfo is not installed (it is optional)."""
    try:
        from torchinfo import summary
    except ImportError:
        return None
    return summary


def variants(work: Workload, summary: Callable[..., Any] | None) -> list[Variant]:
    model, x = work.model, work.x
    runs: list[Variant] = [
        (PLAIN, lambda: model(x)),
        ("trace(stats=False)", lambda: inspector.trace(model, x, stats=False)),
        ("trace(stats=True)", lambda: inspector.trace(model, x, stats=True)),
        ("plain after trace", lambda: model(x)),
        ("floor", lambda: floor_run(model, x)),
    ]
    if summary is not None:
        runs.append(("torchinfo.summary", lambda: summary(model, input_data=x, verbose=0)))
    return runs


def time_once(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of `fn`; the result is freed outside the measurement."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def measure(runs: list[Variant], repeats: int) -> dict[str, list[float]]:
    """Seconds per run of each variant: one warm-up round, then `repeats` rounds, the order
    rotated from round to round so that no variant always runs first (or right after the
    heaviest one)."""
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    with torch.no_grad():
        for _, fn in runs:
            fn()
        for r in range(repeats):
            k = r % len(runs)
            for name, fn in runs[k:] + runs[:k]:
                times[name].append(time_once(fn))
    return times


def retained_bytes(work: Workload) -> tuple[int, int]:
    """(bytes a stats=True Trace keeps alive without its output, number of recorded calls)."""
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),  # the snapshots themselves
        # Allocated inside torch's own Python code: the grown capacity of the modules' hook
        # dicts (kept after the hooks are removed) and torch's caches; not the record.
        tracemalloc.Filter(False, str(Path(torch.__file__).parent / "*")),
    ]
    with torch.no_grad():
        inspector.trace(work.model, work.x, stats=True)  # warm caches outside the measurement
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot().filter_traces(ignore)
            record = inspector.trace(work.model, work.x, stats=True)
            record.output = None
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces(ignore)
        finally:
            tracemalloc.stop()
    retained = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return retained, len(record)


def hooks_left(model: nn.Module) -> int:
    """Forward hooks still registered on `model`'s modules or globally."""
    local = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    global_hooks = torch_module._global_forward_hooks, torch_module._global_forward_pre_hooks
    return local + sum(len(h) for h in global_hooks)


def same_output(work: Workload) -> bool:
    """Whether the traced forward returns exactly what the plain forward returns."""
    with torch.no_grad():
        plain = work.model(work.x)
        traced = inspector.trace(work.model, work.x, stats=True).output
    return isinstance(traced, torch.Tensor) and torch.equal(plain, traced)


def paired(times: dict[str, list[float]], name: str, base: str = PLAIN) -> float:
    """The median over rounds of `name`'s time over `base`'s time in the same round: a slow
    spell of the machine that lasts a round hits both, and cancels."""
    return statistics.median(a / b for a, b in zip(times[name], times[base], strict=True))


def print_table(work: Workload, times: dict[str, list[float]], calls: int) -> None:
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    fastest = {name: min(ts) for name, ts in times.items()}
    base = medians[PLAIN]
    print(f"\n{work.describe()}, {calls} calls recorded")
    header = (
        f"{'median ms':>10} {'ratio':>7} {'paired':>7} {'fastest':>8} {'min ms':>9} {'max ms':>9}"
    )
    print(f"  {'variant':<20} {header}")
    for name, ts in times.items():
        ratio = medians[name] / base
        row = f"{medians[name] * 1e3:>10.1f} {ratio:>6.2f}x {paired(times, name):>6.2f}x"
        row += f" {fastest[name] / fastest[PLAIN]:>7.2f}x"
        print(f"  {name:<20} {row} {min(ts) * 1e3:>9.1f} {max(ts) * 1e3:>9.1f}")
    if "torchinfo.summary" in medians:
        stats, info = "trace(stats=True)", "torchinfo.summary"
        versus = medians[stats] / medians[info]
        pair = paired(times, stats, info)
        quick = fastest[stats] / fastest[info]
        print(f"  {stats} / {info} = {versus:.2f}x (paired {pair:.2f}x, fastest runs {quick:.2f}x)")
    floor, full = paired(times, "floor"), paired(times, "trace(stats=True)")
    shapes = paired(times, "trace(stats=False)")
    print(
        f"  goals (paired): stats=True {full:.3f}x against the floor's {floor:.3f}x: "
        f"{full - floor:+.3f} (goal <= +0.02); shapes only {shapes:.3f}x (goal <= 1.02x)"
    )
    noisy = [name for name, ts in times.items() if max(ts) > NOISY_SPREAD * min(ts)]
    if noisy:
        print(
            f"  noisy: max > {NOISY_SPREAD}x min for {', '.join(noisy)}; something else was "
            f"running (the medians hold up better than the extremes)"
        )


def print_checks(work: Workload) -> None:
    retained, calls = retained_bytes(work)
    per_call = retained / calls
    verdict = "ok" if per_call <= BYTES_PER_CALL_TARGET else "OVER TARGET"
    print(
        f"  memory: {retained / 1024:.1f} KiB retained by the Trace, {calls} calls, "
        f"{per_call:.0f} B per call ({verdict}, target <= {BYTES_PER_CALL_TARGET} B)"
    )
    print(f"  hooks left after tracing: {hooks_left(work.model)}")
    print(f"  traced output identical to plain output: {same_output(work)}")


def run_workload(work: Workload, repeats: int, summary: Callable[..., Any] | None) -> None:
    times = measure(variants(work, summary), repeats)
    with torch.no_grad():
        calls = len(inspector.trace(work.model, work.x, stats=False))
        with SumReads(work.model) as reads:
            work.model(work.x)
    print_table(work, times, calls)
    print(f"  the floor reads {reads.reads} tensors, {reads.bytes / 1e6:.0f} MB per pass")
    print_checks(work)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads")
    parser.add_argument("--only", choices=["resnet50", "gpt"], default=None)
    parser.add_argument("--batch", type=int, default=8, help="ResNet-50 batch (default 8)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = load_torchinfo()
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"{torch.get_num_threads()} threads (torch default {DEFAULT_THREADS}), "
        f"median of {args.repeats} rotating repeats, torch.no_grad()"
        + (", QUICK smoke run" if args.quick else "")
    )
    if summary is None:
        print("torchinfo not installed: its row is skipped (pip install torchinfo==1.8.0)")
    for work in workloads(args.quick, args.only, args.batch):
        run_workload(work, args.repeats, summary)


if __name__ == "__main__":
    main()
