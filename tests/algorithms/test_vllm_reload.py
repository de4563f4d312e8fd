"""reload_api=vllm without vLLM: what the learner writes, and a server that refuses the route."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from fake_vllm import FakeVLLM
from safetensors.torch import load_file
from test_trainer import make_config

from algorithms.rollout_server import write_state
from algorithms.trainer import Trainer
from policies import HFPolicy


def test_the_written_state_names_tied_weights_as_their_own_tensors(tmp_path: Path) -> None:
    policy = HFPolicy.from_pretrained("tiny", device="cpu")
    assert policy.model.config.tie_word_embeddings
    write_state(policy, tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    state = policy.model.state_dict()
    assert set(saved) == set(state) and "lm_head.weight" in saved
    assert all(torch.equal(saved[name], tensor) for name, tensor in state.items())


def test_a_server_without_the_dev_mode_route_fails_the_sync_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeVLLM(HFPolicy.from_pretrained("tiny", device="cpu"))  # no /collective_rpc: HTTP 404
    server = {"base_url": f"{fake.root}/v1", "model": "tiny"}
    server.update(reload_url=f"{fake.root}/collective_rpc", reload_api="vllm")
    try:
        with caplog.at_level(logging.WARNING, logger="algorithms.trainer"):
            metrics = Trainer(make_config(tmp_path, rollout={"server": server})).learn()
    finally:
        fake.close()
    assert metrics["perf/weight_sync_failed"] == 1 and fake.reloads == 0
    assert "collective_rpc refused the weights" in caplog.text and "HTTP 404" in caplog.text
    assert "VLLM_SERVER_DEV_MODE=1" in caplog.text
