"""Contribution benchmarks (issue: per-neuron contributions).

1. gradient x activation of a ResNet-50 layer (batch 1, 224x224) against one plain forward
   plus backward of the model, side by side (alternating, medians).
2. Integrated gradients with 32 steps: peak RSS growth against one forward+backward, each in
   a fresh subprocess (the peak is per process), and the progress callback's count.

    python bench/contrib.py [--layer PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inspector
from bench.models import images, resnet50


def speed(layer: str, repeats: int) -> tuple[float, float]:
    model = resnet50()
    x = images(1)
    plain, contrib = [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        out = model(x)
        out[0, out[0].argmax()].backward()
        model.zero_grad(set_to_none=True)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        inspector.contributions(model, x, layer=layer)
        contrib.append(time.perf_counter() - start)
    return statistics.median(plain[1:]) * 1e3, statistics.median(contrib[1:]) * 1e3


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Samples the resident set every millisecond: the peak above the start, in MB."""

    def __init__(self) -> None:
        self.base = rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mb()) - self.base


def memory(kind: str, layer: str) -> dict[str, float]:
    model = resnet50()
    x = images(1)
    steps: list[int] = []
    sampler = PeakRss()
    if kind == "plain":
        out = model(x)
        out[0, out[0].argmax()].backward()
    else:
        inspector.contributions(model, x, layer=layer, method="integrated_gradients", steps=32,
                                progress=lambda done, total: steps.append(done))  # fmt: skip
    return {"mb": sampler.stop(), "progress_calls": len(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", choices=["plain", "ig"], help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.memory:
        print(json.dumps(memory(ns.memory, ns.layer)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    plain, contrib = speed(ns.layer, ns.repeats)
    print(f"ResNet-50 b1: forward+backward {plain:.0f} ms; grad_x_act of {ns.layer} "
          f"{contrib:.0f} ms ({contrib / plain:.2f}x) (median of {ns.repeats})")  # fmt: skip
    runs = {}
    for kind in ("plain", "ig"):
        out = subprocess.run([sys.executable, __file__, "--memory", kind, "--layer", ns.layer],
                             capture_output=True, text=True, check=True)  # fmt: skip
        runs[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = runs["ig"]["mb"] / max(runs["plain"]["mb"], 1e-9)
    print(f"peak RSS growth: forward+backward +{runs['plain']['mb']:.0f} MB; integrated "
          f"gradients, 32 steps +{runs['ig']['mb']:.0f} MB ({ratio:.2f}x), "
          f"{int(runs['ig']['progress_calls'])} progress reports")  # fmt: skip


if __name__ == "__main__":
    main()
