"""Wall time of the 2-rank torchrun jobs the distributed tests start (gloo on 127.0.0.1).

Each scenario is run N times; the table gives the fastest and the median wall time (torchrun
start to exit, both ranks' Python start-up included), the exit status, and how many runs hung
(stopped by the time limit), ended with a rank aborted by a signal, or named a rank other than
the failing one as torchrun's root cause.

    python bench/dist_jobs.py [--runs N] [SCENARIO...]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.distributed.torchrun import Job, run_job

# name: (script, args, inspector `run` options or None, extra env, failing rank or None)
SCENARIOS: dict[str, tuple[str, tuple[str, ...], list[str] | None, dict[str, str], int | None]] = {
    "healthy-plain": ("healthy.py", ("plain",), None, {}, None),
    "healthy-no-barrier": ("healthy.py", ("plain",), None, {"NO_BARRIER": "1"}, None),
    "healthy-4-modes": ("healthy.py", ("plain", "trace", "explain", "attach"), None, {}, None),
    "shape-plain": ("shape.py", ("plain",), None, {}, 1),
    "shape-explain": ("shape.py", ("explain",), None, {}, 1),
    "shape-trace-store": ("shape.py", ("trace",), None, {}, 1),
    "shape-post-mortem": ("shape.py", ("plain",), ["run", "--post-mortem"], {}, 1),
    "config-store": ("config.py", (), None, {}, 1),
    "wrapper-trace": ("wrapper.py", ("trace",), None, {"PG_TIMEOUT": "5"}, None),
    "wrapper-check": ("wrapper.py", ("check",), None, {"PG_TIMEOUT": "5"}, None),
}


def root_cause(job: Job) -> int | None:
    found = re.search(r"Root Cause.*?rank\s*: (\d+)", job.agent, re.S)
    return int(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    ns = parser.parse_args()
    print(f"{'scenario':20} {'min s':>6} {'median s':>8} {'exit':>6} {'hung':>4} "
          f"{'aborted':>7} {'other cause':>11}")  # fmt: skip
    for name in ns.scenarios:
        script, args, via, env, failing = SCENARIOS[name]
        jobs = [run_job(script, *args, via_inspector=via, env=env) for _ in range(ns.runs)]
        seconds = [j.seconds for j in jobs]
        codes = sorted({j.returncode for j in jobs})
        hung = sum(j.timed_out for j in jobs)
        aborted = sum(
            "SIGABRT" in j.agent or any("terminate called" in j.output(r) for r in j.stderr)
            for j in jobs
        )
        other = sum(failing is not None and root_cause(j) not in (failing, None) for j in jobs)
        exits = ",".join(map(str, codes))
        median = statistics.median(seconds)
        row = f"{name:20} {min(seconds):6.1f} {median:8.1f} {exits:>6} {hung:4} {aborted:7}"
        print(f"{row} {other:11}", flush=True)


if __name__ == "__main__":
    main()
