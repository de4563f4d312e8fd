"""The trainer's set-up, one named step each, in the order :class:`~algorithms.trainer.Trainer`
runs them: join the process group, load the policy, start the sampler, wrap the models, make the
envs, quiet the agents, make the optimizer, open the run log.

Each step takes what it needs and returns what it makes, so a step can be read, tested or reused
alone (a learner of one's own needs the same envs and optimizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml
from transformers import get_scheduler, set_seed

from algorithms.checkpoint import MODEL_DIR
from algorithms.config import ConfigError, TrainConfig
from algorithms.distributed import Ranks, check_layout, join_process_group, wrap_model
from algorithms.envs import check_reference_solution, make_envs, shared_agents
from algorithms.models import enable_checkpointing, load_policy, load_weights, resolve_device
from algorithms.rollout_server import connect
from algorithms.run_log import RunLog
from algorithms.vllm_rollout import start_engine
from policies.hf import HFPolicy

_SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def join(config: TrainConfig) -> tuple[Ranks, torch.device]:
    """This process's rank and device (one process, or one rank of ``torchrun``), seeded."""
    ranks, device = join_process_group(resolve_device(config.device))
    check_layout(config, ranks.world_size)
    set_seed(config.seed + ranks.rank)  # python, numpy and torch
    return ranks, device


def policy_of(
    config: TrainConfig, device: torch.device, given: HFPolicy | None, checkpoint: Path | None
) -> HFPolicy:
    """The policy ``config.model`` describes (or ``given``), with the checkpoint's weights."""
    settings = config.rollout.model_dump(
        include={"max_new_tokens", "temperature", "top_k", "top_p", "fast_decode"}
    )
    settings.update(policy_protocol(config.env.kwargs))
    if given is None:
        path = checkpoint / MODEL_DIR if checkpoint else None
        return load_policy(config.model, device, name_or_path=path, **settings)
    if checkpoint is not None:
        load_weights(given.model, checkpoint / MODEL_DIR)
    return given


def policy_protocol(env_kwargs: dict[str, Any]) -> dict[str, str]:
    """The policy's ``protocol`` setting for envs made with ``env_kwargs``: ``tools`` when they take
    consults as tool calls (docs/tool_calls.md), else nothing."""
    return {"protocol": "tools"} if env_kwargs.get("protocol") == "tools" else {}


def env_kwargs(kwargs: dict[str, Any], policy: Any) -> dict[str, Any]:
    """``kwargs`` for the envs a model policy plays: ``protocol: tools`` becomes the policy's own
    tool-call protocol, whose tool messages are its chat template's. Other policies (a served
    model, a scripted one) keep the name, and the env renders plain ``<tool_response>`` blocks.

    Raises:
        ConfigError: tools asked of a model policy made without ``protocol='tools'``.
    """
    if kwargs.get("protocol") != "tools" or not isinstance(getattr(policy, "protocol", None), str):
        return dict(kwargs)
    if policy.protocol != "tools":
        raise ConfigError(
            "env.kwargs.protocol=tools needs a policy made with protocol='tools' "
            "(HFPolicy(..., chat_template=True, protocol='tools'))"
        )
    return {**kwargs, "protocol": policy.env_protocol}


def sampler_of(config: TrainConfig, policy: HFPolicy) -> tuple[Any, Any]:
    """What samples the episodes when the policy does not, and how it gets new weights: a server
    (synced through the disk or vLLM's ``/collective_rpc``), a colocated vLLM engine (synced in
    memory), or ``(None, None)``: the policy samples itself."""
    rollout = config.rollout
    if rollout.server is not None:
        return connect(rollout, policy, config.output_dir)
    if rollout.engine == "vllm":
        return start_engine(rollout, policy, config.output_dir, seed=config.seed)
    return None, None


def models_of(
    config: TrainConfig, policy: HFPolicy, ranks: Ranks, device: torch.device
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The model the update runs (DDP or FSDP around the policy's under a launcher) and the frozen
    reference of the KL term (``None`` unless ``loss.kl_coef > 0``)."""
    if config.model.gradient_checkpointing:
        enable_checkpointing(policy.model)
    model = wrap_model(policy.model.train(), ranks, device, config.distributed)
    if config.loss.kl_coef <= 0:
        return model, None
    reference = load_policy(config.model, device, trainable=False).model.eval()
    reference.requires_grad_(False)
    return model, reference


def envs_of(config: TrainConfig, policy: HFPolicy, world_size: int) -> list[gym.Env]:
    """One env per episode of a step on this rank, all sharing their agents; with
    ``env.kwargs.protocol: tools`` they take the policy's tool-call protocol."""
    rollout, env = config.rollout, config.env
    count = rollout.problems_per_step // world_size * rollout.group_size
    envs = make_envs(env.id, env_kwargs(env.kwargs, policy), count)
    if rollout.reference_per_group:
        check_reference_solution(envs[0], env.id)
    return envs


def quiet_agents(envs: Sequence[gym.Env]) -> dict[str, Any]:
    """The envs' shared agents, told to leave failure warnings to the trainer (one a step)."""
    agents = shared_agents(envs) or {}
    for agent in agents.values():
        agent.log_failures = False
    return agents


def optimizer_of(
    config: TrainConfig, parameters: list[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over ``parameters`` and its learning-rate schedule."""
    optim = config.optim
    optimizer = torch.optim.AdamW(
        parameters, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay
    )
    scheduler = get_scheduler(
        _SCHEDULES[optim.schedule],
        optimizer,
        num_warmup_steps=optim.warmup_steps,
        num_training_steps=config.steps * optim.epochs * optim.minibatches,
    )
    return optimizer, scheduler


def run_log(config: TrainConfig) -> RunLog:
    """Write the run's config and open its log (rank 0 only)."""
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return RunLog(
        config.output_dir,
        tensorboard=config.tensorboard,
        wandb_project=config.wandb_project,
        config=config.model_dump(mode="json"),
    )
