"""Diagnosis benchmarks (issue: shape errors).

1. `inspector.check` of a 7B-parameter GPT configuration (32 layers, d_model 4096, 32 heads,
   vocab 32000, T=2048) built under torch.device("meta"): wall time and peak RSS growth of
   the dry run, and how many module calls it reached. Run in a fresh subprocess so that the
   peak RSS is this run's own.
2. The cost of explaining a failure: a ResNet-50 (batch 8, 224x224) whose classifier expects
   the wrong number of features. Medians of alternating runs of the plain failing forward
   and of `inspector.trace` (hooks, statistics and diagnosis), and the diagnosis alone (the
   replay of the failing layer plus the explanation).

    python bench/diagnose.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.models import Block, images, resnet50


class GPT(nn.Module):
    """Token embedding, `n_layers` pre-LayerNorm blocks, final norm, LM head."""

    def __init__(self, vocab: int, d_model: int, n_heads: int, n_layers: int, seq: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(seq, d_model)
        self.h = nn.ModuleList(Block(d_model, n_heads, seq) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1))  # made in forward, without a device: needs fake tensors
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def check_7b() -> dict[str, float]:
    import inspector

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.device("meta"):
        model = GPT(vocab=32000, d_model=4096, n_heads=32, n_layers=32, seq=2048)
    params = sum(p.numel() for p in model.parameters())
    idx = torch.empty(1, 2048, dtype=torch.long, device="meta")
    inspector.check(nn.Linear(2, 2), (1, 2))  # one-time warm-up of the fake-tensor machinery
    warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = inspector.check(model, idx)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shapes_ok = result.calls[-1].outputs.shape == (1, 2048, 32000)
    return {
        "params_billion": params / 1e9,
        "seconds": seconds,
        "calls": len(result.calls),
        "findings": len(result),
        "rss_growth_mb": (peak - warm) / 1024,
        "rss_total_growth_mb": (peak - base) / 1024,
        "last_shape_ok": float(shapes_ok),
    }


def diagnose_cost(repeats: int, batch: int) -> dict[str, float]:
    import inspector
    from inspector.engine.api import explain_traceback
    from inspector.engine.diagnose import errors

    model = resnet50()
    model.fc = nn.Linear(1024, 1000)  # planted: the pooled features are 2048
    x = images(batch)
    plain, traced, diag = [], [], []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            with contextlib.suppress(RuntimeError):
                model(x)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            t = inspector.trace(model, x)
            traced.append(time.perf_counter() - start)
            diag.append(errors.last_duration_ms)
            assert t.diagnosis is not None and t.diagnosis.module == "fc"
        walked, checks = [], []
        for _ in range(repeats):
            try:
                model(x)
            except RuntimeError as error:
                failed = error
            spent: list[float] = []
            with _timed_fix_checks(spent):
                start = time.perf_counter()
                found = explain_traceback(failed, model)
                walked.append(time.perf_counter() - start)
            assert found is not None and found.module == "fc"
            checks.append(sum(spent))
    return {
        "plain_failing_forward_ms": statistics.median(plain) * 1e3,
        "trace_with_diagnosis_ms": statistics.median(traced) * 1e3,
        "diagnosis_ms": statistics.median(diag),
        "explain_ms": statistics.median(walked) * 1e3,
        "fix_check_ms": statistics.median(checks),
    }


@contextlib.contextmanager
def _timed_fix_checks(spent: list[float]) -> Any:
    """Add the time of each fix check (the walk of the pass with the fixed layer) to `spent`."""
    from inspector.engine.diagnose import verify

    original = verify._walk_with

    def timed(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args)
        finally:
            spent.append((time.perf_counter() - start) * 1e3)

    verify._walk_with = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        verify._walk_with = original  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batch")
    parser.add_argument("--only-7b", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.only_7b:
        print(json.dumps(check_7b()))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    out = subprocess.run(
        [sys.executable, __file__, "--only-7b"], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"check 7B GPT ({r['params_billion']:.2f}B params, meta): {r['seconds']:.2f} s, "
        f"{int(r['calls'])} module calls, {int(r['findings'])} findings, "
        f"peak RSS +{r['rss_growth_mb']:.0f} MB (+{r['rss_total_growth_mb']:.0f} MB with the "
        f"one-time warm-up), logits shape right: {bool(r['last_shape_ok'])}"
    )
    repeats, batch = (3, 2) if ns.quick else (5, 8)
    d = diagnose_cost(repeats, batch)
    print(
        f"ResNet-50 b{batch} failing at fc: plain failing forward "
        f"{d['plain_failing_forward_ms']:.0f} ms, trace + diagnosis "
        f"{d['trace_with_diagnosis_ms']:.0f} ms, of which the diagnosis "
        f"{d['diagnosis_ms']:.2f} ms (median of {repeats}); explain() of the same error "
        f"(the walk of each failing forward, the diagnosis, the fix check) "
        f"{d['explain_ms']:.1f} ms, of which the fix check {d['fix_check_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
