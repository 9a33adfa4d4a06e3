"""False alarms on healthy models: every warning on these zoos is one.

Traces each model of tests/healthy_zoo.py in eval mode (forward only) and in training mode
(forward, loss, backward), over several seeds (weights and inputs both change with the
seed), and counts the models that got any warning, per zoo and mode. The tests run seed 0
only; this sweep is the calibration population.

    python bench/false_alarms.py [--seeds 5] [--zoo hf|awkward|all] [--quiet]

Prints one line per warning (seed, mode, model, code, summary) and a table of counts.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inspector
from tests.healthy_zoo import AWKWARD, hf_cases


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging

        logging.set_verbosity_error()
    except ImportError:
        pass


def _hf_runs(seed: int) -> list[tuple[str, str, Any]]:
    runs = []
    for case in hf_cases():
        model, eval_kwargs, train_kwargs = case.build(seed)
        model.eval()
        runs.append((case.name, "eval", inspector.trace(model, **eval_kwargs)))
        model.train()
        runs.append((case.name, "train", inspector.trace(model, backward=True, **train_kwargs)))
    return runs


def _awkward_runs(seed: int) -> list[tuple[str, str, Any]]:
    runs = []
    for case in AWKWARD:
        model, args, kwargs = case.build(seed)
        model.eval()
        runs.append((case.name, "eval", inspector.trace(model, *args, **kwargs)))
        model.train()
        trained = inspector.trace(
            model, *args, loss_fn=case.loss, target=None, backward=True, **kwargs
        )
        runs.append((case.name, "train", trained))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--zoo", choices=("hf", "awkward", "all"), default="all")
    parser.add_argument("--quiet", action="store_true", help="counts only")
    opts = parser.parse_args()
    _quiet_transformers()
    warnings.simplefilter("ignore")
    zoos = {"hf": _hf_runs, "awkward": _awkward_runs}
    chosen = list(zoos) if opts.zoo == "all" else [opts.zoo]
    noisy: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    codes: Counter[str] = Counter()
    start = time.perf_counter()
    for seed in range(opts.seeds):
        for zoo in chosen:
            for name, mode, t in zoos[zoo](seed):
                total[zoo, mode] += 1
                found = [f for f in t.findings if f.kind == "warning"]
                if t.error is not None:
                    print(f"seed {seed} {mode:5} {name}: ERROR {t.error!r:.160}")
                if found:
                    noisy[zoo, mode] += 1
                for f in found:
                    codes[f.code] += 1
                    if not opts.quiet:
                        print(f"seed {seed} {mode:5} {name}: {f.code}: {f.summary}")
    print(f"\n{opts.seeds} seed(s), {time.perf_counter() - start:.0f} s")
    print(f"{'zoo':8} {'mode':6} {'with warnings':>14} {'runs':>6}")
    for zoo, mode in sorted(total):
        print(f"{zoo:8} {mode:6} {noisy[zoo, mode]:>14} {total[zoo, mode]:>6}")
    if codes:
        print("by family: " + ", ".join(f"{c} {n}" for c, n in codes.most_common()))


if __name__ == "__main__":
    main()
