"""Checkpoints that resume a run exactly.

A checkpoint is a directory ``step-000042/`` holding ``model/`` (``save_pretrained`` of the model,
or of its LoRA adapters, and of the tokenizer) and ``trainer_state.pt``: optimizer, scheduler,
every random state (Python, NumPy, torch CPU and CUDA; of every rank in a distributed run), the
step, the problem order's position and the config. Resuming from it and training on gives the
same parameters as never stopping.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
MODEL_DIR = "model"


@dataclass
class TrainerState:
    """What besides the weights a resumed run needs.

    Attributes:
        step: training steps done.
        data_epoch: passes over the problem set started so far (seeds the next order).
        data_position: problems of the current pass already used.
        optimizer: ``optimizer.state_dict()``.
        scheduler: ``scheduler.state_dict()``.
        rng: random states, see :func:`capture_rng`.
        config: the run's config as a dict (for reference).
        rank_rng: in a distributed run, every rank's random states in rank order (``rng`` is
            rank 0's); ``None`` on one process.
    """

    step: int
    data_epoch: int
    data_position: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    config: dict[str, Any]
    rank_rng: list[dict[str, Any]] | None = None


def capture_rng() -> dict[str, Any]:
    """Every random state a training step consumes."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the states :func:`capture_rng` took."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: Path, policy: Any, state: TrainerState, *, model_state: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint into ``directory`` (replacing it atomically) and return it.

    ``model_state`` replaces the model's own state dict (the gathered weights of a sharded model).
    """
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(partial / MODEL_DIR, policy, model_state)
    torch.save(state.__dict__, partial / STATE_FILE)
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return directory


def save_model(path: Path, policy: Any, model_state: dict[str, Any] | None = None) -> None:
    """``save_pretrained`` of the policy's model and tokenizer; ``model_state`` replaces the model's state dict."""
    if model_state is None:
        policy.save_pretrained(path)
        return
    policy.model.save_pretrained(path, state_dict=model_state)
    policy.tokenizer.save_pretrained(path)


def load_state(directory: Path) -> TrainerState:
    """Read ``trainer_state.pt`` of a checkpoint.

    Raises:
        FileNotFoundError: naming the directory when it is not a checkpoint.
    """
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint: {STATE_FILE} is missing")
    # The state holds numpy RNG tuples and plain Python objects; it is our own file.
    return TrainerState(**torch.load(path, weights_only=False))


def find_checkpoint(output_dir: Path, which: str) -> Path:
    """Resolve ``resume_from``: ``"latest"`` (newest in ``output_dir/checkpoints``) or a path.

    Raises:
        FileNotFoundError: ``"latest"`` and ``output_dir`` holds no checkpoint.
    """
    if which != "latest":
        return Path(which)
    found = sorted((output_dir / "checkpoints").glob("step-*[0-9]"))
    if not found:
        raise FileNotFoundError(
            f"resume_from=latest but {output_dir / 'checkpoints'} holds no checkpoint; set output_dir "
            "to the run to resume, or drop resume_from to start afresh"
        )
    return found[-1]


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    found = sorted((output_dir / "checkpoints").glob("step-*[0-9]"))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
