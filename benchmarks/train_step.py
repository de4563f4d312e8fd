"""Where a training step's time goes: generation, scoring (env steps: helpers and verifiers), update.

    python benchmarks/train_step.py                       # tiny model on CPU
    python benchmarks/train_step.py --preset gpu-0.5b     # Qwen2.5-0.5B-shaped model on one GPU
    python benchmarks/train_step.py --steps 5 rollout.group_size=8 optim.micro_batch_size=4
    python benchmarks/train_step.py --preset smollm2-lora-top8   # SmolLM2-135M (aipo models pull)

Prints a table and writes ``train_step.json`` and ``train_step.png`` into ``--out``. The first
``--warmup`` steps are run but not counted. Peak memory is the process's resident set on CPU and
``torch.cuda.max_memory_allocated`` on GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from transformers.utils import logging as transformers_logging

from algorithms.config import TrainConfig, load_config
from algorithms.trainer import Trainer

SMOLLM2_WORK = [
    "model.name_or_path=smollm2-135m-instruct",
    "model.chat_template=true",
    "model.dtype=float32",
    "device=cpu",
    "env.kwargs={level: 1, max_turns: 3, max_consults: 1}",
    "rollout.problems_per_step=4",
    "rollout.group_size=8",
    "rollout.guided_per_group=3",
    "rollout.reference_per_group=1",  # a reward-1 episode per group: every step has a gradient to time
    "rollout.max_new_tokens=48",
    "loss.agent_mode=aipo",
    "optim.micro_batch_size=8",
    "optim.lr=1e-4",
]
PRESETS: dict[str, list[str]] = {
    "tiny-cpu": [
        "device=cpu",
        "rollout.problems_per_step=4",
        "rollout.group_size=4",
        "rollout.max_new_tokens=64",
        "env.kwargs={level: 2, max_turns: 3}",
        "optim.micro_batch_size=8",
    ],
    # SmolLM2-135M-Instruct, examples/aipo_smollm2.yaml: AIPO, half of each group consulting
    "smollm2-lora-top8": [*SMOLLM2_WORK, "model.train_layers=8", "model.lora={r: 16, alpha: 32}"],
    "smollm2-lora": [*SMOLLM2_WORK, "model.lora={r: 16, alpha: 32}"],
    "smollm2-top4": [*SMOLLM2_WORK, "model.train_layers=4"],
    "smollm2-full": SMOLLM2_WORK,
    "gpu-0.5b": [
        "device=cuda",
        "bf16=true",
        "model.tiny={hidden_size: 896, num_layers: 24, num_heads: 14, num_kv_heads: 2, intermediate_size: 4864}",
        "rollout.problems_per_step=8",
        "rollout.group_size=8",
        "rollout.max_new_tokens=256",
        "env.kwargs={level: 4, max_turns: 2}",
        "optim.micro_batch_size=16",
        "optim.lr=1e-6",
    ],
}


class TimedEnv(gym.Wrapper):
    """Adds the seconds spent in ``step`` (helpers' replies and the task's scorer) to ``clock``."""

    def __init__(self, env: gym.Env, clock: dict[str, float]) -> None:
        super().__init__(env)
        self.clock = clock

    def step(self, action: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.env.step(action)
        finally:
            self.clock["scoring_s"] += time.perf_counter() - started


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(config: TrainConfig, steps: int, warmup: int) -> dict[str, Any]:
    trainer = Trainer(config)
    clock = {"scoring_s": 0.0}
    trainer.envs = [TimedEnv(env, clock) for env in trainer.envs]
    rows, grad_norms, gaps = [], [], []
    for step in range(warmup + steps):
        clock["scoring_s"] = 0.0
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        batch = trainer.collect()
        collected = time.perf_counter()
        metrics = trainer.update(batch)
        grad_norms.append(metrics.get("charts/grad_norm", float("nan")))
        gaps.append(metrics.get("rollout/logprob_gap_max", float("nan")))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        updated = time.perf_counter()
        if step >= warmup:
            rows.append(
                {
                    "generation_s": collected - started - clock["scoring_s"],
                    "scoring_s": clock["scoring_s"],
                    "update_s": updated - collected,
                    "generated_tokens": int(batch.policy_mask.sum()),
                    "trained_tokens": int(batch.attention_mask.sum()) * config.optim.epochs,
                }
            )
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}
    mean["step_s"] = mean["generation_s"] + mean["scoring_s"] + mean["update_s"]
    mean["generated_tokens_per_s"] = mean["generated_tokens"] / mean["generation_s"]
    mean["trained_tokens_per_s"] = mean["trained_tokens"] / mean["update_s"]
    mean["peak_memory_gib"] = peak_memory_gib(trainer.device)
    mean["grad_norms"] = grad_norms  # every step's, warm-up included (0 when no group's rewards differ)
    mean["logprob_gap_max"] = max((gap for gap in gaps if not math.isnan(gap)), default=math.nan)
    mean["parameters"] = sum(parameter.numel() for parameter in trainer.model.parameters())
    mean["device"] = (
        torch.cuda.get_device_name() if trainer.device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    return mean


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ("generation_s", "scoring_s", "update_s")
    figure, axis = plt.subplots(figsize=(6, 1.8))
    left = 0.0
    for part in parts:
        axis.barh([0], [result[part]], left=left, label=part.removesuffix("_s"))
        left += result[part]
    axis.set_yticks([])
    axis.set_xlabel("seconds per training step")
    axis.set_title(title)
    axis.legend(ncol=3, fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="TrainConfig overrides, key=value")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny-cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("results/train_step"))
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    transformers_logging.disable_progress_bar()
    overrides = [*PRESETS[arguments.preset], "progress=false", f"output_dir={arguments.out / 'run'}"]
    config = load_config(TrainConfig, None, [*overrides, *arguments.overrides])
    result = measure(config, arguments.steps, arguments.warmup)
    result.update(preset=arguments.preset, overrides=arguments.overrides, steps=arguments.steps)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "train_step.json").write_text(json.dumps(result, indent=2))
    plot(result, arguments.out / "train_step.png", f"{arguments.preset} on {result['device']}")
    for key, value in result.items():
        print(f"{key:>24}  {value:.4g}" if isinstance(value, float) else f"{key:>24}  {value}")


if __name__ == "__main__":
    main()
