"""Backward benchmark: what gradient recording costs on top of a plain forward+backward.

Model (bench/models.py): ResNet-50 in train mode on a (8, 3, 224, 224) batch with
nn.CrossEntropyLoss, as a training step computes it (without the optimizer step).

  plain fwd+bwd             loss = ce(model(x), y); loss.backward()
  backward, shapes only     inspector.trace(model, x, loss_fn=ce, target=y, stats=False,
                            backward=True): forward shapes, gradient statistics
  backward, stats           the same with stats=True: forward and gradient statistics

Gradients are dropped (`zero_grad(set_to_none=True)`) outside the measurement. Every variant
runs once as a warm-up, then `--repeats` times, alternating within each repeat; the table
gives medians and their ratio to the plain step's median.

Usage: python bench/backward.py [--quick] [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

import inspector
from bench.models import images, resnet50

PLAIN = "plain fwd+bwd"
TARGET = 1.25


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 at 112x112, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    torch.set_num_threads(args.threads)
    batch, size = (1, 112) if args.quick else (8, 224)
    model = resnet50().train()
    x = images(batch, size)
    y = torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(0))
    ce = nn.CrossEntropyLoss()

    def plain() -> object:
        loss = ce(model(x), y)
        loss.backward()
        return loss

    def traced(stats: bool) -> Callable[[], object]:
        return lambda: inspector.trace(model, x, loss_fn=ce, target=y, stats=stats, backward=True)

    runs: list[tuple[str, Callable[[], object]]] = [
        (PLAIN, plain),
        ("backward, shapes only", traced(False)),
        ("backward, stats", traced(True)),
    ]
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"{torch.get_num_threads()} threads, ResNet-50 train mode, input {tuple(x.shape)}, "
        f"median of {repeats} alternating repeats" + (", QUICK smoke run" if args.quick else "")
    )
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _, fn in runs:
        fn()
        model.zero_grad(set_to_none=True)
    for _ in range(repeats):
        for name, fn in runs:
            gc.collect()
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            del result
            model.zero_grad(set_to_none=True)
    base = statistics.median(times[PLAIN])
    print(f"  {'variant':<24} {'median ms':>10} {'ratio':>7} {'min ms':>9} {'max ms':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {name:<24} {med * 1e3:>10.1f} {med / base:>6.2f}x {min(ts) * 1e3:>9.1f} "
            f"{max(ts) * 1e3:>9.1f}"
        )
    ratio = statistics.median(times["backward, shapes only"]) / base
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"  gradient statistics: {ratio:.2f}x a plain step ({verdict}, target <= {TARGET}x)")
    t = inspector.trace(model, x, loss_fn=ce, target=y, stats=False, backward=True)
    with_grads = sum(1 for c in t.calls if c.grad is not None)
    print(f"  calls recorded {len(t.calls)}, with gradients {with_grads}")


if __name__ == "__main__":
    main()
