"""Every CPU training example learns from its first steps: a nonzero gradient and weights that change.

A random tiny model never solves a problem, so every group's rewards are equal and nothing is
learned; the examples start from the shipped warm-up instead. The demo's arm configs are run
from the same warm-up (the demo passes its own). ``aipo_gpu.yaml`` is left out: it needs CUDA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from algorithms.config import TrainConfig, load_config
from algorithms.trainer import Trainer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRAINING = [
    "aipo_arithmetic.yaml",
    "grpo_arithmetic.yaml",
    "demo_aipo.yaml",
    "demo_grpo.yaml",
    "demo_rule.yaml",
]


def test_every_cpu_training_example_is_covered():
    runs_training = {
        path.name
        for path in EXAMPLES.glob("*.yaml")
        if path.read_text().split("\n#   ", 1)[1].startswith("aipo train")
    }
    # aipo_gpu.yaml needs CUDA; aipo_smollm2.yaml is the real tier's (tests/real/test_smollm2_train.py);
    # real_rule_smollm2.yaml is the real-model experiment's arm (tests/aipo/test_real_rule_config.py)
    assert runs_training - set(TRAINING) == {"aipo_gpu.yaml", "aipo_smollm2.yaml", "real_rule_smollm2.yaml"}


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINING)
def test_the_first_steps_of_each_training_example_change_the_weights(name, tmp_path):
    overrides = [f"output_dir={tmp_path}", "progress=false", "steps=3"]
    if name.startswith("demo_"):
        overrides.append("model.name_or_path=warmup:arithmetic")
    config = load_config(TrainConfig, EXAMPLES / name, overrides)
    trainer = Trainer(config)
    before = [parameter.detach().clone() for parameter in trainer.model.parameters()]
    norms = [trainer.train_step()["charts/grad_norm"] for _ in range(2)]
    after = list(trainer.model.parameters())
    assert max(norms) > 0, f"{name}: every group's rewards were equal in its first steps"
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
