"""What rollout.engine=vllm refuses before any engine starts (no vLLM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_trainer import make_config

from algorithms.config import ConfigError, TrainConfig
from algorithms.distributed import check_layout


def test_the_colocated_engine_runs_in_one_learner_process(tmp_path: Path) -> None:
    config = make_config(tmp_path, rollout={"engine": "vllm"})
    check_layout(config, world_size=1)
    with pytest.raises(ConfigError, match="rollout.engine=vllm runs in one learner process"):
        check_layout(config, world_size=2)


def test_the_colocated_engine_and_a_server_are_one_or_the_other(tmp_path: Path) -> None:
    server = {"base_url": "http://x/v1", "model": "m"}
    with pytest.raises(ValueError, match="set one of them"):
        TrainConfig.model_validate({"rollout": {"engine": "vllm", "server": server}})
