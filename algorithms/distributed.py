r"""Data-parallel training: the trainer runs unchanged under ``torchrun`` or ``accelerate launch``.

::

    torchrun --standalone --nproc_per_node 2 -m aipo.cli train examples/aipo_arithmetic.yaml   # CPU or GPU
    torchrun --standalone --nproc_per_node 8 -m aipo.cli train CONFIG.yaml distributed=fsdp
    accelerate launch --multi_gpu --num_processes 8 -m aipo.cli train CONFIG.yaml

The launcher sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`join_process_group` joins the group (``gloo`` on CPU, ``nccl`` on CUDA, device
``cuda:LOCAL_RANK``). Without those variables nothing here does anything.

What is split over the ``W`` ranks: each step's ``P`` problems (rank ``r`` plays problems
``r P/W .. (r+1) P/W - 1`` of the step, all ``G`` episodes of each, so every group stays on one
rank) and the update's episodes (a rank learns on the episodes it played). What is not: the
weights (every rank holds them, or its shard with FSDP), the problem order (every rank walks the
same seeded order), the optimizer step (identical on every rank). Ranks sample with seed
``seed + rank``.

The normaliser is global. For one minibatch, rank ``r`` holds episodes ``B_r`` with ``N_r``
counted tokens (``S_r`` episodes). With ``N = sum_r N_r`` (one all-reduce per optimizer step;
``S = sum_r S_r`` for ``aggregation="sequence"``) the loss of the whole minibatch is::

    L = 1/N sum_r sum_{i in B_r} l_i          (l_i: episode i's summed token losses)

Rank ``r`` back-propagates ``L_r = W/N sum_{i in B_r} l_i``. DDP (and FSDP's reduce-scatter)
average gradients over ranks, so every rank ends with::

    g = 1/W sum_r grad L_r = 1/N sum_r sum_{i in B_r} grad l_i = grad L

which is the gradient one process computes on the whole batch. Advantages are computed on the
rewards of the whole step (gathered from all ranks), so ``advantage_scale="batch"`` uses the
whole batch's spread too; group advantages need only the group, which is on one rank. With
micro-batches, DDP synchronises only on the last backward of an optimizer step (``no_sync``
before); FSDP reduce-scatters every micro-batch (gradients stay sharded).

DDP versus FSDP (``distributed: ddp | fsdp``): DDP keeps the whole model and optimizer state on
every rank and all-reduces gradients: the simplest choice whenever the model, its gradients and
AdamW's two moments fit on one device. FSDP (``torch.distributed.fsdp.fully_shard``, each
decoder block a unit) keeps ``1/W`` of the weights, gradients and optimizer state per rank and
gathers a block's weights for its forward and backward; use it when they do not fit. Rollouts
under FSDP gather all weights once per step and keep them whole while generating (ranks
generate different numbers of tokens, so per-forward gathers would deadlock): generation needs
the whole model's memory on each device either way. FSDP runs on CPU too (gloo), which is how
the tests check it; it is meant for GPUs. Not supported with FSDP: LoRA (use DDP: adapters are
small) and a sharded reference model (the KL reference is whole on every rank).

Checkpoints are written by rank 0 (whole weights, gathered under FSDP) together with every
rank's random state; all ranks resume from the same checkpoint, each restoring its own random
state, so a resumed run with the same world size matches an uninterrupted one. With another
world size, ranks without a saved state are seeded from ``(seed, rank, step)`` instead. The
checkpoint directory must be visible to every rank (one machine, or a shared filesystem).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from algorithms.config import ConfigError, TrainConfig

_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 logs, shows progress and writes files).
        world_size: number of processes ``W``.
        local_rank: rank on this machine (picks the GPU).
        owns_group: this process group was started by :func:`join_process_group` (and is
            destroyed by :func:`leave_process_group`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def grouped(self) -> bool:
        """A process group exists (collectives are needed even with one rank under FSDP)."""
        return dist.is_available() and dist.is_initialized()


def join_process_group(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the launcher's process group, if any; returns the ranks and this rank's device.

    Uses an already initialised group as it is. Otherwise starts one when ``torchrun`` /
    ``accelerate launch`` variables are set (``nccl`` for CUDA, ``gloo`` for CPU).
    """
    launched = all(name in os.environ for name in _LAUNCHER_VARIABLES)
    owns = False
    if not (dist.is_available() and dist.is_initialized()):
        if not launched:
            return Ranks(), device
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return Ranks(rank, world_size, local_rank, owns), device


def leave_process_group(ranks: Ranks) -> None:
    """Wait for every rank, then destroy the group if :func:`join_process_group` started it."""
    if ranks.owns_group and ranks.grouped:
        dist.barrier()
        dist.destroy_process_group()


def check_layout(config: TrainConfig, world_size: int) -> None:
    """Refuse settings that cannot be split over ``world_size`` ranks.

    Raises:
        ConfigError: naming the option and how to fix it.
    """
    problems = config.rollout.problems_per_step
    if problems % world_size:
        raise ConfigError(
            f"rollout.problems_per_step ({problems}) must be divisible by the number of processes "
            f"({world_size}): each rank plays whole groups; set it to a multiple of {world_size}"
        )
    episodes = problems // world_size * config.rollout.group_size
    if config.optim.minibatches > episodes:
        raise ConfigError(
            f"optim.minibatches ({config.optim.minibatches}) exceeds the episodes per rank ({episodes}); "
            "lower it or raise rollout.problems_per_step"
        )
    if config.rollout.server is not None and world_size > 1:
        raise ConfigError(
            "rollout.server works with one learner process; drop it or run without torchrun/accelerate"
        )
    if config.rollout.engine == "vllm" and world_size > 1:
        raise ConfigError(
            "rollout.engine=vllm runs in one learner process (an engine per rank is not supported yet); "
            "use rollout.engine=hf under torchrun/accelerate"
        )
    if config.distributed == "fsdp" and config.model.lora is not None:
        raise ConfigError("distributed=fsdp does not support model.lora; use distributed=ddp for LoRA")


def local_problems(problems: Sequence[int], ranks: Ranks) -> list[int]:
    """Rank ``r``'s contiguous share ``r P/W .. (r+1) P/W - 1`` of the step's problems."""
    share = len(problems) // ranks.world_size
    return list(problems[ranks.rank * share : (ranks.rank + 1) * share])


def wrap_model(model: torch.nn.Module, ranks: Ranks, device: torch.device, mode: str) -> torch.nn.Module:
    """The module the update runs: ``model`` itself on one process, else DDP or FSDP around it.

    FSDP shards ``model`` in place (each block named in ``_no_split_modules``, then the root)
    after broadcasting rank 0's weights, so that ranks start equal as under DDP.
    """
    if not ranks.grouped or (mode == "ddp" and ranks.world_size == 1):
        return model
    if mode == "ddp":
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    from torch.distributed.fsdp import fully_shard

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
    blocks = {
        name for module in model.modules() for name in (getattr(module, "_no_split_modules", None) or ())
    }
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextmanager
def whole_weights(model: torch.nn.Module) -> Iterator[None]:
    """Under FSDP, gather every block's weights once and keep them until the block ends (rollouts)."""
    if not is_fsdp(model):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    units = [module for module in model.modules() if isinstance(module, FSDPModule)]
    # The root never reshards after forward; the blocks must not until the rollout ends.
    blocks = [unit for unit in units if unit is not model]
    for unit in blocks:
        unit.set_reshard_after_forward(False, recurse=False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
        for unit in blocks:
            unit.set_reshard_after_forward(True, recurse=False)


def gradient_sync(model: torch.nn.Module, last: bool) -> Any:
    """DDP's ``no_sync`` for every micro-batch but the last of an optimizer step."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel) and not last:
        return model.no_sync()
    return nullcontext()


def loss_scale(model: torch.nn.Module, ranks: Ranks) -> float:
    """``W`` when gradients are averaged over ranks (DDP, FSDP), else 1 (module docstring)."""
    return float(ranks.world_size) if model_is_wrapped(model) else 1.0


def model_is_wrapped(model: torch.nn.Module) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel) or is_fsdp(model)


def global_sums(values: Sequence[float], ranks: Ranks, device: torch.device) -> list[float]:
    """``values`` summed over all ranks (one all-reduce); unchanged on one process."""
    if not ranks.grouped:
        return [float(value) for value in values]
    tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_tensor(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Concatenate an equally shaped tensor of every rank along dim 0, in rank order."""
    if not ranks.grouped:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(ranks.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_objects(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not ranks.grouped:
        return [value]
    gathered: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop together)."""
    return global_sums([float(flag)], ranks, device)[0] > 0


def barrier(ranks: Ranks) -> None:
    if ranks.grouped:
        dist.barrier()


def reduce_metrics(metrics: Mapping[str, float], ranks: Ranks) -> dict[str, float]:
    """Metrics of the whole step from every rank's: throughputs (``*_per_s``) and counts
    (``rollout/agent_failures*``, ``charts/agent_tokens_learned``) summed, maxima (``*_max``) the
    largest, the rest averaged.

    Ranks hold equally many episodes, so the mean of per-rank means is the mean over the step.
    A ``rollout/`` metric a rank lacks (a helper it never consulted) counts as 0 there; any
    other missing metric is averaged over the ranks that have it.
    """
    if not ranks.grouped or ranks.world_size == 1:
        return dict(metrics)
    everyone = gather_objects(dict(metrics), ranks)
    names = sorted({name for rank_metrics in everyone for name in rank_metrics})
    reduced = {}
    for name in names:
        default = 0.0 if name.startswith("rollout/") else None
        values = [m.get(name, default) for m in everyone]
        present = [value for value in values if value is not None]
        summed = name.endswith("_per_s") or name.startswith("rollout/agent_failures")
        summed = summed or name == "charts/agent_tokens_learned"
        if name.endswith("_max"):
            reduced[name] = max(present)
        else:
            reduced[name] = sum(present) if summed else sum(present) / len(present)
    return reduced


# -- checkpoints --------------------------------------------------------------------------------


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """Under FSDP the whole (gathered, CPU) state dict on every rank; ``None`` otherwise (a collective)."""
    if not is_fsdp(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict; whole (gathered) under FSDP, a collective there."""
    if not is_fsdp(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Inverse of :func:`optimizer_state` (every rank passes the same whole state)."""
    if not is_fsdp(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=options)


def rank_rng_state(saved: dict[str, Any], per_rank: list[dict[str, Any]] | None, ranks: Ranks) -> Any:
    """This rank's saved random state, or ``None`` when the checkpoint has none for it."""
    if per_rank is not None and len(per_rank) == ranks.world_size:
        return per_rank[ranks.rank]
    return saved if ranks.rank == 0 else None
