"""One update on a fixed, hand-built batch: by one process on all of it, or by each rank on its half.

Used by ``test_distributed.py``: :func:`run_rank` is started in ``world`` processes (as torchrun
would, through the environment variables), :func:`one_update` is also called in the test's own
process on the whole batch. Both return the gradients and parameters after the update.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from algorithms.batch import AGENT, PAD, POLICY, PROMPT, EpisodeBatch
from algorithms.config import TrainConfig
from algorithms.distributed import reduce_metrics
from algorithms.forward import token_logprobs
from algorithms.trainer import Trainer

GROUPS, GROUP_SIZE = 4, 4

# name -> sections of the config that differ between cases
CASES: dict[str, dict] = {
    "grpo_token": {"loss": {"agent_mode": "mask", "aggregation": "token"}},
    "aipo_token": {"loss": {"agent_mode": "aipo", "aggregation": "token"}},
    "aipo_sequence": {"loss": {"agent_mode": "aipo", "aggregation": "sequence"}},
    "aipo_batch_scale": {"loss": {"agent_mode": "aipo", "advantage_scale": "batch"}},
    "aipo_token_fsdp": {"loss": {"agent_mode": "aipo"}, "distributed": "fsdp"},
    "aipo_token_checkpointing": {"loss": {"agent_mode": "aipo"}, "model": {"gradient_checkpointing": True}},
}


def make_config(output_dir: Path, case: str) -> TrainConfig:
    data: dict = {
        "output_dir": str(output_dir),
        "progress": False,
        "device": "cpu",
        "rollout": {"problems_per_step": GROUPS, "group_size": GROUP_SIZE, "max_new_tokens": 8},
        # eps large against the gradients: AdamW's first step is then smooth in the gradient
        # (lr * g / (|g| + eps)) instead of lr * sign(g), so the parameters can be compared
        # to a tolerance too; no clipping, so the raw gradients are compared.
        "optim": {"lr": 1e-3, "eps": 1e-3, "micro_batch_size": 3, "max_grad_norm": None},
    }
    for name, values in CASES[case].items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return TrainConfig.model_validate(data)


def hand_built_batch(model: torch.nn.Module) -> EpisodeBatch:
    """16 episodes in 4 groups: varied lengths, helper replies in half of them, varied rewards.

    Behaviour log-probs are the model's own plus noise, so ratios differ from 1 and some clip.
    """
    generator = torch.Generator().manual_seed(7)
    rows = GROUPS * GROUP_SIZE
    lengths = [12 + (7 * row) % 9 for row in range(rows)]
    width = max(lengths)
    input_ids = torch.zeros(rows, width, dtype=torch.long)
    source = torch.full((rows, width), PAD)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(3, 200, (length,), generator=generator)
        source[row, :length] = POLICY
        source[row, :4] = PROMPT
        if row % 2 == 0:
            source[row, 7:10] = AGENT
    rewards = torch.tensor(
        [[1.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 0.0], [1.0, 1.0, 0.0, 0.2], [0.0, 0.0, 0.0, 1.0]]
    )
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, input_ids, source != PAD)
    noise = 0.3 * torch.randn(rows, width, generator=generator)
    behaviour = torch.where(source == POLICY, logprobs + noise, 0.0)
    return EpisodeBatch(
        input_ids=input_ids,
        source=source,
        behaviour_logprobs=behaviour,
        agent_logprobs=torch.zeros(rows, width),
        rewards=rewards.flatten(),
        group_ids=torch.arange(GROUPS).repeat_interleave(GROUP_SIZE),
    )


def one_update(output_dir: Path, case: str, rank: int = 0, world: int = 1) -> dict:
    """Build a trainer, update once on this rank's half (all of it on one process); gradients and parameters."""
    trainer = Trainer(make_config(output_dir, case))
    batch = hand_built_batch(trainer.policy.model)
    share = len(batch) // world
    metrics = trainer.update(batch.select(torch.arange(rank * share, (rank + 1) * share)))
    metrics = reduce_metrics(metrics, trainer.ranks)
    result: dict = {"loss": metrics["losses/loss"], "grads": {}, "params": {}}
    for name, parameter in trainer.policy.model.named_parameters():
        grad, value = parameter.grad, parameter.detach()
        if hasattr(value, "full_tensor"):  # FSDP shards: gather (every rank must call this)
            grad, value = grad.full_tensor(), value.full_tensor()
        result["grads"][name] = grad.clone()
        result["params"][name] = value.clone()
    return result


def run_rank(rank: int, world: int, port: int, output_dir: str) -> None:
    """One process of a ``world``-process job: every case, results of rank 0 saved to ``results.pt``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    results = {case: one_update(Path(output_dir) / f"{case}-{rank}", case, rank, world) for case in CASES}
    if rank == 0:
        torch.save(results, Path(output_dir) / "results.pt")
    dist.destroy_process_group()
