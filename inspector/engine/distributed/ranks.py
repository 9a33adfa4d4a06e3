"""Where this process stands in a distributed job, and the labels that tell ranks apart.

`rank_info()` reads the process group, never creates one; `launched_rank()` reads what the
launcher set in the environment, for labels (headers, log lines, file names) only.
"""

from __future__ import annotations

import os


def rank_info() -> tuple[int, int] | None:
    """(rank, world_size) of the default process group, or None when there is none.

    Never initializes a group: a debugger that joined one would change the job it looks at.
    """
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - builds without distributed support
        return None
    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist.get_rank(), dist.get_world_size()


def launched_rank() -> int | None:
    """The rank a launcher gave this process (RANK, with WORLD_SIZE over 1, as torchrun sets
    them), or None. Known before the script makes its process group and after it destroys
    it: for labels (headers, log lines, file names), never to decide what to run."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "1"))
    except (KeyError, ValueError):
        return None
    return rank if world > 1 and 0 <= rank < world else None


def per_rank_path(path: str, rank: int | None) -> str:
    """`path` for one rank's file: a `{rank}` placeholder filled in, else `.rankN` before the
    suffix (trace.json -> trace.rank1.json). With `rank` None (one process) the path is kept,
    a placeholder read as rank 0."""
    if rank is None:
        return path.replace("{rank}", "0") if "{rank}" in path else path
    if "{rank}" in path:
        return path.replace("{rank}", str(rank))
    head, sep, name = path.rpartition(os.sep)
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no suffix, or a dot file such as ".trace"
        return f"{path}.rank{rank}"
    return f"{head}{sep}{stem}.rank{rank}{dot}{suffix}"


def rank_prefixed(text: str, rank: int | None = None) -> str:
    """`text` with each line prefixed `[rankN]: `, as torch's own excepthook writes a rank's
    traceback under torchrun, so the lines of two ranks stay apart in one log. Unchanged
    outside a launched job."""
    rank = launched_rank() if rank is None else rank
    if rank is None or not text:
        return text
    prefix = f"[rank{rank}]: "
    return "".join(prefix + line for line in text.splitlines(keepends=True))


def rank_label() -> str:
    """` [rank N]` inside a launched job, "" elsewhere: for headers and log lines."""
    rank = launched_rank()
    return "" if rank is None else f" [rank {rank}]"
