"""`aipo train` on SmolLM2-135M-Instruct on CPU: LoRA on the top blocks, AIPO with consults."""

from __future__ import annotations

from pathlib import Path

import torch

from algorithms.config import TrainConfig, load_config
from algorithms.trainer import Trainer

EXAMPLE = Path(__file__).parents[2] / "examples" / "aipo_smollm2.yaml"


def test_the_example_trains_lora_on_the_top_blocks_with_a_gradient(smollm2_dir: str, tmp_path: Path) -> None:
    # one trajectory-guided episode per group (the reference solution, reward 1) makes every group's
    # rewards differ, so the first step has a gradient whatever SmolLM2 samples
    overrides = [
        "steps=1",
        "save_every=0",
        "progress=false",
        f"output_dir={tmp_path}",
        "rollout.problems_per_step=2",
        "rollout.group_size=4",
        "rollout.guided_per_group=2",
        "rollout.reference_per_group=1",
        "rollout.max_new_tokens=24",
    ]
    config = load_config(TrainConfig, EXAMPLE, overrides)
    trainer = Trainer(config)
    named = dict(trainer.model.named_parameters())
    trainable = [name for name, parameter in named.items() if parameter.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert {int(name.split("layers.")[1].split(".")[0]) for name in trainable} == set(range(22, 30))
    before = {name: named[name].detach().clone() for name in trainable}
    frozen = named["base_model.model.model.layers.0.self_attn.q_proj.weight"].detach().clone()
    batch = trainer.collect()
    metrics = trainer.update(batch)
    assert metrics["charts/grad_norm"] > 0
    assert metrics["rollout/logprob_gap_max"] <= 1e-3
    assert metrics["charts/agent_tokens_learned"] > 0
    assert any(not torch.equal(before[name], named[name]) for name in trainable)
    assert torch.equal(frozen, named["base_model.model.model.layers.0.self_attn.q_proj.weight"])
