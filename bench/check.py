"""The cost of `inspector.check`: the first call in a process, tiny models, a 70B config.

1. The first `check` in a fresh process, and where its time goes: each first-use cost is
   paid alone, in order, in a fresh process (the FSDP classes looked up to unwrap a wrapper,
   the fake-tensor mode, whose constructor imports torch._dynamo, the first dispatch), then
   the first check itself; a second fresh process times the first check as a user meets it.
2. Tiny models: `check` over a plain forward of the same inputs, rotating, medians.
3. A 70B-parameter Llama-style configuration built on the meta device (no memory for
   weights), checked on real token ids, three times: seconds and peak RSS, in a fresh process
   (twice per side with --compare, alternating).

`python bench/check.py` (all), `--first`, `--tiny`, `--70b`; `--compare DIR` also runs each
measurement on an older copy of the package, side by side in the same run (alternating), where
DIR holds its `inspector` folder: `git archive <rev> inspector | tar -x -C DIR`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _child(flag: str, older: str | None = None) -> Any:
    """Run one measurement in a fresh process; with `older`, on the package found there."""
    env = dict(os.environ)
    if older is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (older, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, __file__, flag], capture_output=True, text=True, check=True, cwd=ROOT,
        env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def where() -> str:
    import inspector

    return str(Path(inspector.__file__).parent)


def first_breakdown() -> dict[str, float]:
    """In a fresh process: each first-use cost alone, then the first check."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    import torch
    from torch import nn

    times["import torch"] = time.perf_counter() - t
    t = time.perf_counter()
    import inspector
    from inspector.engine.distributed import unwrap
    from inspector.engine.dryrun.fake import FakeRun

    times["import inspector"] = time.perf_counter() - t
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(2, 8)
    t = time.perf_counter()
    unwrap(model)
    times["unwrap (imports torch.distributed.fsdp)"] = time.perf_counter() - t
    t = time.perf_counter()
    FakeRun()
    times["FakeTensorMode() (imports torch._dynamo)"] = time.perf_counter() - t
    t = time.perf_counter()
    with FakeRun() as fake:
        a = fake.empty((3, 4), torch.float32, "cpu")
        (a @ a.T).relu()
    times["first fake dispatch"] = time.perf_counter() - t
    t = time.perf_counter()
    inspector.check(model, x)
    times["first check after those"] = time.perf_counter() - t
    t = time.perf_counter()
    inspector.check(model, x)
    times["second check"] = time.perf_counter() - t
    return times


def first_check() -> dict[str, float]:
    """In a fresh process: the first check as a user meets it (after the imports), and one
    full garbage collection after it: check pauses the collector, so the collections of
    what its first call imports come after it; a full one bounds what was left."""
    import gc

    import torch
    from torch import nn

    import inspector

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    t = time.perf_counter()
    inspector.check(model, torch.randn(2, 8))
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    gc.collect()
    return {"first check": seconds, "full collection after": time.perf_counter() - t}


def _tiny_models() -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))  # fmt: skip
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    ).eval()  # fmt: skip
    models: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
        "MLP 64-256-256-10, batch 32": (mlp, (torch.randn(32, 64),), {}),
        "CNN 2 conv blocks, batch 8, 32x32": (cnn, (torch.randn(8, 3, 32, 32),), {}),
    }
    try:
        import transformers
    except ImportError:  # pragma: no cover
        return models
    transformers.logging.set_verbosity_error()
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=1000,
                                     n_positions=128)  # fmt: skip
    gpt2 = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 1000, (2, 32))
    models["GPT-2 random config (2 layers, d 64), 2x32 ids"] = (gpt2, (), {"input_ids": ids})
    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=128, vocab_size=1000)
    ).eval()  # fmt: skip
    models["Llama random config (2 layers, d 64), 2x32 ids"] = (llama, (), {"input_ids": ids})
    return models


def tiny(rounds: int = 25) -> dict[str, dict[str, float]]:
    import torch

    import inspector

    torch.set_num_threads(1)  # two threads on a shared 2-core machine: plain forwards jitter 10x

    results = {}
    for name, (model, args, kwargs) in _tiny_models().items():
        inspector.check(model, *args, **kwargs)  # warm
        plain, dry = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            with torch.no_grad():
                model(*args, **kwargs)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            inspector.check(model, *args, **kwargs)
            dry.append(time.perf_counter() - t)
        p, d = statistics.median(plain), statistics.median(dry)
        results[name] = {
            "plain_ms": p * 1e3,
            "check_ms": d * 1e3,
            "ratio": d / p,
            "fastest_ratio": min(dry) / min(plain),
        }
    return results


def llama_70b() -> dict[str, float]:
    import resource

    import torch
    import transformers

    import inspector

    transformers.logging.set_verbosity_error()
    inspector.check(torch.nn.Linear(2, 2), (1, 2))  # the one-time warm-up, measured above
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = transformers.LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
    )  # fmt: skip
    t = time.perf_counter()
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).eval()
    built = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters()) / 1e9
    ids = torch.randint(0, config.vocab_size, (1, 512))
    seconds = []
    for _ in range(3):
        t = time.perf_counter()
        result = inspector.check(model, input_ids=ids)
        seconds.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "params_billion": params,
        "build_s": built,
        "check_s": seconds[0],
        "later_checks_s": min(seconds[1:]),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "findings": len(result),
        "calls": len(result.calls),
    }


def main() -> None:
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print(__doc__)
        return
    older = None
    if "--compare" in args:
        at = args.index("--compare")
        older = str(Path(args[at + 1]).resolve())
        del args[at : at + 2]
    flags = set(args) or {"--first", "--tiny", "--70b"}
    runs: list[tuple[str, str | None]] = [("now", None)]
    if older is not None:
        runs = [("before", older), ("now", None)]
        for label, path in runs:
            print(f"{label}: {_child('--child-where', path)}")
    if "--first" in flags:
        breakdown = _child("--child-breakdown")
        print("first check in a fresh process, each first-use cost paid alone:")
        for name, seconds in breakdown.items():
            print(f"  {name:45s} {seconds:6.2f} s")
        alone: dict[str, list[dict[str, float]]] = {label: [] for label, _ in runs}
        for _ in range(3):  # alternating, so a change of load hits both
            for label, path in runs:
                alone[label].append(_child("--child-first", path))
        for label, results in alone.items():
            checks = ", ".join(f"{r['first check']:.2f}" for r in results)
            after = ", ".join(f"{r['full collection after']:.2f}" for r in results)
            print(f"first check as a user meets it, {label} (3 fresh processes): {checks} s; "
                  f"a full collection after it: {after} s")  # fmt: skip
    if "--tiny" in flags:
        print("tiny models, check over a plain forward (medians of 25, rotating, 1 thread; "
              "the lower of 2 fresh processes, alternating):")  # fmt: skip
        tiny_runs: dict[str, dict[str, dict[str, float]]] = {label: {} for label, _ in runs}
        for _ in range(2):
            for label, path in runs:
                for name, r in _child("--child-tiny", path).items():
                    kept = tiny_runs[label].get(name)
                    if kept is None or r["check_ms"] < kept["check_ms"]:
                        tiny_runs[label][name] = r
        for name in tiny_runs["now"]:
            for label, by_model in tiny_runs.items():
                r = by_model[name]
                print(f"  {name:50s} {label:6s} plain {r['plain_ms']:7.2f} ms  check "
                      f"{r['check_ms']:7.2f} ms  {r['ratio']:5.1f}x (fastest runs "
                      f"{r['fastest_ratio']:.1f}x)")  # fmt: skip
    if "--70b" in flags:
        for label, path in runs * (2 if older is not None else 1):
            r = _child("--child-70b", path)
            print(f"70B Llama-style config on meta ({r['params_billion']:.1f}B params, 1x512 ids), "
                  f"{label}: check {r['check_s']:.2f} s, the best of 2 more "
                  f"{r['later_checks_s']:.2f} s ({r['calls']:.0f} calls, "
                  f"{r['findings']:.0f} findings), peak RSS {r['peak_rss_mb']:.0f} MB (before "
                  f"building: {r['rss_before_mb']:.0f} MB); building on meta "
                  f"{r['build_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    children: dict[str, Callable[[], Any]] = {
        "--child-breakdown": first_breakdown,
        "--child-first": first_check,
        "--child-tiny": tiny,
        "--child-70b": llama_70b,
        "--child-where": where,
    }
    if len(sys.argv) == 2 and sys.argv[1] in children:
        print(json.dumps(children[sys.argv[1]]()))
    else:
        main()
