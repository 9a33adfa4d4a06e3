"""Ranks' summaries exchanged through the c10d store the job already runs: no collective.

Each rank posts its summary under a key of its own; any rank reads its peers' back with a
deadline, so a rank that failed or hangs in a collective reads as missing, not as a stall.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

KEY_PREFIX = "torch-inspector/"
MAX_PAYLOAD = 256 * 1024  # bytes of JSON one rank may post under one key


def default_store(timeout_s: float = 30.0) -> Any | None:
    """The c10d store of this job, reached without a collective, or None outside a job.

    With a process group: the store it was built on (below the group's key prefix). Without
    one, under torchrun (which runs the store in its agent and says so in
    TORCHELASTIC_USE_AGENT_STORE): a client of that store at MASTER_ADDR:MASTER_PORT. Never
    starts a store of its own: the port belongs to the job.
    """
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return None
    if not dist.is_available():
        return None
    if dist.is_initialized():
        get = getattr(dist.distributed_c10d, "_get_default_store", None)
        if get is not None:
            # The group sees the store through its own key prefix; use the store under it, so
            # a rank that posts before its group exists and one that reads after agree on keys.
            store = get()
            while isinstance(store, dist.PrefixStore):
                store = store.underlying_store
            return store
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or not addr or not port:
        return None
    return dist.TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s))


def _key(key: str, rank: int) -> str:
    return f"{KEY_PREFIX}{key}/rank{rank}"


def encode_summary(summary: Mapping[str, Any], limit: int = MAX_PAYLOAD) -> bytes:
    """The JSON bytes of `summary`, at most `limit` long: when too large, calls are dropped
    from the end and `truncated` says how many. Raises ValueError when even no calls is too
    large."""
    data = json.dumps(summary, separators=(",", ":")).encode()
    if len(data) <= limit:
        return data
    calls = summary.get("calls")
    if not isinstance(calls, list):
        raise ValueError(f"summary is {len(data)} bytes, over the {limit} bytes allowed")
    keep_lo, keep_hi = 0, len(calls)  # the largest number of calls that fits, by bisection
    best: bytes | None = None
    while keep_lo <= keep_hi:
        keep = (keep_lo + keep_hi) // 2
        trial = dict(summary, calls=calls[:keep], truncated=len(calls) - keep)
        encoded = json.dumps(trial, separators=(",", ":")).encode()
        if len(encoded) <= limit:
            best, keep_lo = encoded, keep + 1
        else:
            keep_hi = keep - 1
    if best is None:
        raise ValueError(f"summary without its calls is still over the {limit} bytes allowed")
    return best


def post_summary(store: Any, key: str, rank: int, summary: Mapping[str, Any]) -> None:
    """Post this rank's `summary` (JSON-ready) under `key` in the c10d `store`.

    A plain store write: no collective, so posting never changes the job's schedule.
    """
    store.set(_key(key, rank), encode_summary(summary))


def read_summaries(
    store: Any, key: str, world_size: int, timeout_s: float
) -> dict[int, dict[str, Any] | None]:
    """Every rank's summary posted under `key`, waiting at most `timeout_s` in all.

    A rank that posted nothing in time (it failed first, or is stuck in a collective) reads
    as None, as does an unreadable payload.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    found: dict[int, dict[str, Any] | None] = {}
    for rank in range(world_size):
        name = _key(key, rank)
        found[rank] = None
        try:
            if not store.check([name]):
                left = deadline - time.monotonic()
                if left <= 0:
                    continue
                # A zero timeout means "no limit" to c10d: never pass one.
                store.wait([name], timedelta(seconds=max(left, 0.001)))
            value = json.loads(store.get(name))
        except Exception:  # a timeout, a peer gone with the store, a malformed payload
            continue
        if isinstance(value, dict):
            found[rank] = value
    return found


def post_own(key: str, summary: Mapping[str, Any]) -> int | None:
    """Under a process group: this rank's `summary` under `key`; the rank, or None when there
    is no group or store (then nothing is posted)."""
    from inspector.engine.distributed.ranks import rank_info

    ranks = rank_info()
    store = default_store() if ranks is not None else None
    if ranks is None or store is None:
        return None
    post_summary(store, key, ranks[0], summary)
    return ranks[0]


def peers_posted(key: str, timeout_s: float = 1.0) -> dict[int, dict[str, Any]]:
    """The other ranks' summaries under `key` (waiting `timeout_s` at most); {} outside a
    group. A rank that posted nothing is left out."""
    from inspector.engine.distributed.ranks import rank_info

    ranks = rank_info()
    store = default_store() if ranks is not None else None
    if ranks is None or store is None:
        return {}
    posted = read_summaries(store, key, ranks[1], timeout_s=timeout_s)
    return {r: s for r, s in sorted(posted.items()) if r != ranks[0] and isinstance(s, dict)}
