"""Training on episodes a server samples: token ids and log-probs come back, weights go back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fake_vllm import FakeVLLM
from scripted_lm import ForcedPolicy
from test_trainer import make_config

from algorithms.config import ConfigError
from algorithms.distributed import check_layout
from algorithms.forward import token_logprobs
from algorithms.trainer import Trainer
from policies import HFPolicy
from policies.completions import CompletionsPolicy, RolloutServerError


@pytest.fixture
def server() -> Iterator[FakeVLLM]:
    fake = FakeVLLM(HFPolicy.from_pretrained("tiny", device="cpu"))
    yield fake
    fake.close()


def served(fake: FakeVLLM, **options: object) -> dict:
    return {"base_url": f"{fake.root}/v1", "model": "tiny", **options}


def test_server_turns_carry_its_token_ids_and_their_log_probs(server: FakeVLLM) -> None:
    learner = HFPolicy.from_pretrained("tiny", device="cpu")
    policy = CompletionsPolicy(
        learner, "tiny", base_url=f"{server.root}/v1", max_new_tokens=12, max_retries=0
    )
    contexts = [learner.encode_prompt("What is 2 + 3?"), learner.encode_prompt("What is 7 * 6?")]
    actions = policy.generate(contexts)
    assert server.completions == 2
    for context, action in zip(contexts, actions, strict=True):
        assert 1 <= len(action.token_ids) <= 12
        assert action.text == learner.tokenizer.decode(list(action.token_ids), skip_special_tokens=True)
        ids = torch.tensor([[*context, *action.token_ids]])
        with torch.no_grad():  # the learner's own log-probs of what the server sampled (same weights)
            ours = token_logprobs(learner.model, ids, torch.ones_like(ids))[0][0, len(context) :]
        assert torch.allclose(ours, torch.tensor(action.logprobs), atol=1e-5)


def test_training_on_server_rollouts_keeps_the_servers_weights_in_step(tmp_path: Path) -> None:
    # the server's turns are scripted (some right, some wrong), their log-probs its model's
    server = FakeVLLM(ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu")))
    rollout = {"server": served(server, reload_url=f"{server.root}/update_weights_from_disk")}
    trainer = Trainer(make_config(tmp_path, rollout=rollout, optim={"lr": 1e-2}))
    start = [parameter.detach().clone() for parameter in trainer.policy.model.parameters()]
    try:
        metrics = trainer.learn()
    finally:
        server.close()
    assert server.completions >= 2 * 2 * 4 and server.reloads == 2  # every episode of both steps
    assert metrics["perf/weight_sync_failed"] == 0 and metrics["perf/weight_sync_s"] > 0
    learned = list(trainer.policy.model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(start, learned, strict=True))
    for a, b in zip(learned, server.policy.model.parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach())  # the server samples with the learner's weights


def test_a_resumed_run_hands_its_weights_to_the_server_first(tmp_path: Path) -> None:
    server = FakeVLLM(ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu")))
    rollout = {"server": served(server, reload_url=f"{server.root}/update_weights_from_disk")}
    try:
        Trainer(make_config(tmp_path / "a", rollout=rollout, optim={"lr": 1e-2}, save_every=1)).learn()
        with torch.no_grad():  # the server restarts with other weights
            for parameter in server.policy.model.parameters():
                parameter.zero_()
        checkpoint = tmp_path / "a" / "checkpoints" / "step-000001"
        resumed = Trainer(make_config(tmp_path / "b", rollout=rollout, resume_from=str(checkpoint)))
    finally:
        server.close()
    assert resumed.step == 1 and server.reloads == 3
    for a, b in zip(resumed.policy.model.parameters(), server.policy.model.parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_a_failed_sync_is_logged_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeVLLM(HFPolicy.from_pretrained("tiny", device="cpu"), reload_fails=True)
    try:
        rollout = {"server": served(fake, reload_url=f"{fake.root}/update_weights_from_disk")}
        with caplog.at_level(logging.WARNING, logger="algorithms.trainer"):
            metrics = Trainer(make_config(tmp_path, rollout=rollout)).learn()
    finally:
        fake.close()
    assert metrics["perf/weight_sync_failed"] == 1 and (tmp_path / "final").is_dir()
    assert "cannot load weights of another shape" in caplog.text


def test_servers_that_cannot_serve_training_get_clear_errors(server: FakeVLLM) -> None:
    learner = HFPolicy.from_pretrained("tiny", device="cpu")

    class TextTokens:  # a server that ignores return_tokens_as_token_ids
        def __init__(self, client: object) -> None:
            self.completions = self
            self.client = client

        def create(self, **request: object) -> object:
            request["extra_body"] = {}
            return self.client.completions.create(**request)

    real = CompletionsPolicy(learner, "tiny", base_url=f"{server.root}/v1", max_retries=0)
    text_tokens = CompletionsPolicy(learner, "tiny", base_url=server.root, client=TextTokens(real.client))
    with pytest.raises(RolloutServerError, match="return_tokens_as_token_ids"):
        text_tokens.generate([learner.encode_prompt("What is 1 + 1?")])
    down = CompletionsPolicy(learner, "tiny", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_s=5)
    with pytest.raises(RolloutServerError, match=r"127\.0\.0\.1:9/v1 failed \(APIConnectionError"):
        down.generate([learner.encode_prompt("What is 1 + 1?")])


def test_one_learner_process_per_server(tmp_path: Path) -> None:
    config = make_config(tmp_path, rollout={"server": {"base_url": "http://x/v1", "model": "m"}})
    with pytest.raises(ConfigError, match="rollout.server works with one learner process"):
        check_layout(config, world_size=2)
