"""Inspecting a model under torch.distributed without changing its collective schedule.

Three parts, none of which issues a collective:

* where this process stands (ranks): `rank_info()` reads the process group, never creates
  one; `launched_rank()`, `per_rank_path()`, `rank_label()` and `rank_prefixed()` tell the
  ranks' files and log lines apart;
* wrappers: `unwrap()` finds the user's module inside DistributedDataParallel (whose forward
  broadcasts buffers and arms the gradient all-reduce: running it on one rank only would leave
  the ranks out of step), and `forward_collective()` says why a module's forward cannot run on
  one rank alone (FSDP all-gathers its sharded parameters in every forward);
* comparing ranks: each rank posts a compact summary of what it saw (summaries) to the c10d
  store that torchrun (or init_process_group) already runs, and any rank can read its peers'
  summaries back with a deadline (store). `first_divergence()` and `parameter_divergence()`
  name the first module and value where the ranks differ, with each rank's value (divergence).
"""

from inspector.engine.distributed.divergence import (
    Divergence,
    first_divergence,
    parameter_divergence,
)
from inspector.engine.distributed.ranks import (
    launched_rank,
    per_rank_path,
    rank_info,
    rank_label,
    rank_prefixed,
)
from inspector.engine.distributed.store import (
    KEY_PREFIX,
    MAX_PAYLOAD,
    default_store,
    encode_summary,
    post_summary,
    read_summaries,
)
from inspector.engine.distributed.summaries import (
    MAX_TENSORS,
    call_summaries,
    parameter_shapes,
    summarize,
)
from inspector.engine.distributed.wrappers import DDP_NOTE, forward_collective, unwrap

__all__ = [
    "DDP_NOTE",
    "KEY_PREFIX",
    "MAX_PAYLOAD",
    "MAX_TENSORS",
    "Divergence",
    "call_summaries",
    "default_store",
    "encode_summary",
    "first_divergence",
    "forward_collective",
    "launched_rank",
    "parameter_divergence",
    "parameter_shapes",
    "per_rank_path",
    "post_summary",
    "rank_info",
    "rank_label",
    "rank_prefixed",
    "read_summaries",
    "summarize",
    "unwrap",
]
