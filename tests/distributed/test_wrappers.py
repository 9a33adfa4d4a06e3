"""rank_info, unwrap and forward_collective in a one-rank gloo group inside this process (an
in-memory store: no network, no peer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from inspector.engine.distributed import (
    DDP_NOTE,
    default_store,
    forward_collective,
    launched_rank,
    parameter_shapes,
    per_rank_path,
    rank_info,
    unwrap,
)


@pytest.fixture(scope="module")
def one_rank_group() -> Iterator[None]:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch has no torch.distributed with gloo in this build")
    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_without_a_group_nothing_is_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE"):
        monkeypatch.delenv(name, raising=False)
    assert rank_info() is None
    assert default_store() is None
    model = nn.Linear(2, 2)
    assert unwrap(model) == (model, None)
    assert forward_collective(model) is None


def test_ddp_is_unwrapped_to_its_module(one_rank_group: None) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    assert rank_info() == (0, 1)
    inner = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    ddp = DDP(inner)
    assert unwrap(ddp) == (inner, DDP_NOTE)
    assert "DistributedDataParallel" in (forward_collective(ddp) or "")
    assert forward_collective(inner) is None
    outer = nn.Sequential(ddp)  # a wrapper inside a plain container is still found
    assert (forward_collective(outer) or "").startswith("0 is DistributedDataParallel")
    assert default_store() is not None


def test_fsdp2_has_no_inside_to_run_alone(one_rank_group: None) -> None:
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        pytest.skip("this torch has no FSDP2 (fully_shard)")
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    mesh = init_device_mesh("cpu", (1,))
    fully_shard(model[0], mesh=mesh)
    fully_shard(model, mesh=mesh)
    inner, note = unwrap(model)
    assert inner is model
    assert note is not None and note.startswith("FSDP2 (fully_shard)")
    assert "all-gathers" in (forward_collective(model) or "")
    assert "FSDP2" in (forward_collective(model[0]) or "")
    # a sharded parameter reports its global shape, so ranks compare alike
    assert parameter_shapes(model)["0.weight"] == [8, 4]


def test_the_launchers_rank_labels_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_rank() == 1
    monkeypatch.setenv("WORLD_SIZE", "1")  # a one-process job has no rank to tell apart
    assert launched_rank() is None
    monkeypatch.delenv("RANK")
    assert launched_rank() is None
    assert per_rank_path("out/trace.json", 1) == "out/trace.rank1.json"
    assert per_rank_path("out/trace-{rank}.json", 3) == "out/trace-3.json"
    assert per_rank_path("trace", 2) == "trace.rank2"
    assert per_rank_path(".trace", 2) == ".trace.rank2"
    assert per_rank_path("out/trace.json", None) == "out/trace.json"


def test_ddp_parameter_numbers_map_to_names_in_the_reducers_order(one_rank_group: None) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from inspector.engine.distributed.unused import reducer_parameter_names

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 3)
            self.frozen = nn.Linear(3, 3).requires_grad_(False)
            self.b = nn.Linear(3, 2)
            self.tied = self.a  # the same parameters again: counted once
            self.c = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.b(self.frozen(self.a(x))))

    model = Shared()
    DDP._set_params_and_buffers_to_ignore_for_model(model, ["c.bias"])
    ddp = DDP(model)
    reducer_params, _ = ddp._build_params_for_reducer()
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert reducer_parameter_names(ddp) == [by_id[id(p)] for p in reducer_params]
    assert reducer_parameter_names(ddp) == ["a.weight", "a.bias", "b.weight", "b.bias", "c.weight"]


@pytest.mark.parametrize("per_layer", [True, False], ids=["per-layer", "root-only"])
def test_fsdp2_parameter_gradients_are_recorded(one_rank_group: None, per_layer: bool) -> None:
    """Under fully_shard autograd fills the unsharded parameters: their gradients are the
    ones recorded (a hook on the sharded DTensor never runs)."""
    from torch.distributed.fsdp import fully_shard

    import inspector

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    if per_layer:
        fully_shard(model[0])
        fully_shard(model[2])
    fully_shard(model)
    t = inspector.trace(model, torch.randn(3, 4), loss_fn=nn.CrossEntropyLoss(),
                        target=torch.tensor([0, 1, 0]), backward=True)  # fmt: skip
    for path in ("0", "2"):
        grad = t.find(path).grad
        assert grad is not None and [p[0] for p in grad.params] == ["weight", "bias"], path
        layer = model[int(path)]
        for (name, norm, size), param in zip(grad.params, (layer.weight, layer.bias), strict=True):
            # one rank: the reduce-scatter leaves the full gradient, as the hook saw it
            assert norm == pytest.approx(float(param.grad.full_tensor().norm()), rel=1e-5), name
            assert size == pytest.approx(float(param.detach().full_tensor().norm()), rel=1e-5), name
