"""check_state_dict across Hugging Face architectures (the healthy zoo's tiny configs): a
checkpoint of the same model after a change the user makes for real (tokens added, a wider
config, a DDP wrapper, another number of labels) is explained, whether it loads is predicted
right, and the fix, run as written, makes it load. A checkpoint of the same config is quiet."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import inspector
from tests.healthy_zoo import HF_BUILDERS

pytest.importorskip("transformers")

ARCHS = ["bert", "distilbert", "gpt2", "llama", "qwen2", "t5", "bart", "whisper", "vit",
         "wav2vec2", "resnet"]  # fmt: skip
HIDDEN = ("hidden_size", "n_embd", "d_model", "dim")


pytestmark = pytest.mark.usefixtures("quiet_transformers")


def _rebuilt(model: nn.Module, **changes: Any) -> nn.Module:
    config = copy.deepcopy(model.config)
    for name, value in changes.items():
        setattr(config, name, value)
    return type(model)(config)


def _variants(model: nn.Module) -> dict[str, tuple[nn.Module, dict[str, Any], str]]:
    """name -> (the model to load into, the checkpoint, the cause expected)."""
    found: dict[str, tuple[nn.Module, dict[str, Any], str]] = {}
    found["ddp"] = (model, {"module." + k: v for k, v in model.state_dict().items()}, "prefix")
    try:
        embedding = model.get_input_embeddings()
    except NotImplementedError:
        embedding = None
    if isinstance(embedding, nn.Embedding):
        grown = copy.deepcopy(model)
        grown.resize_token_embeddings(embedding.num_embeddings + 3)
        found["tokens added"] = (grown, model.state_dict(), "vocabulary")
        found["checkpoint grew"] = (model, grown.state_dict(), "vocabulary")
    config = vars(model.config)
    hidden = next((h for h in HIDDEN if type(config.get(h)) is int), None)
    if hidden is not None and "hidden_sizes" not in config:
        found["wider"] = (
            model,
            _rebuilt(model, **{hidden: 2 * config[hidden]}).state_dict(),
            "config",
        )
    labels = config.get("id2label")
    if isinstance(labels, dict) and any("classifier" in k for k in model.state_dict()):
        found["labels"] = (
            model,
            _rebuilt(model, num_labels=len(labels) + 2).state_dict(),
            "classes",
        )
    return found


@pytest.mark.parametrize("arch", ARCHS)
def test_each_change_is_explained_and_its_fix_loads(arch: str) -> None:
    model = HF_BUILDERS[arch]()[0]
    quiet = inspector.check_state_dict(model, HF_BUILDERS[arch]()[0].state_dict())
    assert quiet.ok and not quiet.causes, str(quiet)
    for name, (target, sd, cause) in _variants(model).items():
        before = {k: v.clone() for k, v in target.state_dict().items()}
        result = inspector.check_state_dict(target, sd)
        assert all(torch.equal(v, target.state_dict()[k]) for k, v in before.items())
        assert not result.ok, f"{arch} {name}"
        assert cause in [c.kind for c in result.causes], f"{arch} {name}:\n{result}"
        assert result.fix is not None, f"{arch} {name}:\n{result}"
        scope = {"model": copy.deepcopy(target), "sd": dict(sd), "torch": torch, "nn": nn}
        exec(result.fix, scope)  # ends with the load: raises if the advice is wrong
