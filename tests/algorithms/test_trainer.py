from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from scripted_lm import ForcedPolicy

from algorithms.advantages import group_advantages
from algorithms.batch import PROMPT
from algorithms.config import ConfigError, TrainConfig
from algorithms.trainer import Trainer
from policies import HFPolicy


def make_config(output_dir: Path, **sections: dict) -> TrainConfig:
    data: dict = {
        "steps": 2,
        "output_dir": str(output_dir),
        "progress": False,
        "env": {"kwargs": {"level": 1, "max_turns": 3}},
        "rollout": {"problems_per_step": 2, "group_size": 4, "max_new_tokens": 16},
        "optim": {"lr": 1e-3, "micro_batch_size": 3},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values} if isinstance(values, dict) else values
    return TrainConfig.model_validate(data)


def make_trainer(config: TrainConfig, **options) -> Trainer:
    base = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16)
    return Trainer(config, policy=ForcedPolicy(base), **options)


def parameters(trainer: Trainer) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in trainer.model.parameters()]


def same(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_grpo_and_aipo_steps_change_the_parameters_differently(tmp_path: Path) -> None:
    results = {}
    for mode in ("mask", "aipo"):
        trainer = make_trainer(make_config(tmp_path / mode, loss={"agent_mode": mode}))
        before = parameters(trainer)
        metrics = trainer.train_step()
        assert 0 < metrics["rollout/consult_rate"] < 1 and metrics["rollout/zero_variance_groups"] < 1
        results[mode] = parameters(trainer)
        assert not same(before, results[mode])
    # same seed, same episodes: only the helper-token term tells the two apart
    assert not same(results["mask"], results["aipo"])


def test_guided_episodes_consult_first_in_training(tmp_path: Path) -> None:
    config = make_config(tmp_path, rollout={"guided_per_group": 1})
    base = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16)
    trainer = Trainer(config, policy=ForcedPolicy(base, consult_prob=0.0))
    batch = trainer.collect()
    consulted = [record.consults["reasoning"] for record in batch.records]
    assert consulted == [1, 0, 0, 0, 1, 0, 0, 0]
    assert trainer.update(batch)["losses/loss"] != 0.0
    metrics = trainer.train_step()  # the scripted consults count in consult_rate, not in the policy's own
    assert metrics["rollout/consult_rate"] == 0.25 and metrics["rollout/unguided_consult_rate"] == 0.0


def test_the_loss_goes_down_on_a_fixed_batch(tmp_path: Path) -> None:
    trainer = make_trainer(make_config(tmp_path, loss={"agent_mode": "aipo"}))
    batch = trainer.collect()
    losses = [trainer.update(batch)["losses/loss"] for _ in range(6)]
    assert losses[-1] < losses[0]


def test_gradient_accumulation_equals_one_big_micro_batch(tmp_path: Path) -> None:
    for aggregation in ("token", "sequence"):
        loss = {"aggregation": aggregation}
        whole = make_trainer(make_config(tmp_path / "a", loss=loss, optim={"micro_batch_size": 8}))
        parts = make_trainer(make_config(tmp_path / "b", loss=loss, optim={"micro_batch_size": 3}))
        batch = whole.collect()
        torch.manual_seed(1)
        whole.update(batch)
        torch.manual_seed(1)
        parts.update(batch)
        # the gradients of the (only) optimizer step are still in .grad
        for a, b in zip(whole.model.parameters(), parts.model.parameters(), strict=True):
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def test_skipping_zero_gradient_episodes_leaves_the_update_unchanged(tmp_path: Path) -> None:
    # AIPO helper terms on every episode (not only A > 0), two minibatches, micro-batches of 3
    settings = {
        "loss": {"agent_mode": "aipo", "agent_positive_only": False},
        "rollout": {"problems_per_step": 3},
    }
    results, metrics = {}, {}
    batch = None
    for skip in (False, True):
        optim = {"skip_zero_gradient_rows": skip, "minibatches": 2}
        trainer = make_trainer(make_config(tmp_path / str(skip), **settings, optim=optim))
        if batch is None:  # one batch for both; its first group made all-wrong (advantage 0)
            batch = trainer.collect()
            first = batch.group_ids == batch.group_ids[0]
            batch = replace(batch, rewards=torch.where(first, 0.0, batch.rewards.float()))
        # a second update where every advantage is 0: AdamW's moments still move the weights
        same_rewards = replace(batch, rewards=torch.zeros_like(batch.rewards))
        torch.manual_seed(1)
        metrics[skip] = trainer.update(batch)
        moved = parameters(trainer)
        nothing_to_learn = trainer.update(same_rewards)
        assert nothing_to_learn["losses/loss"] == 0 and nothing_to_learn["charts/skipped_rows"] == float(skip)
        results[skip] = parameters(trainer)
        assert not same(moved, results[skip])
    assert 0 < metrics[True]["charts/skipped_rows"] < 1 and metrics[False]["charts/skipped_rows"] == 0
    assert metrics[True]["losses/loss"] == pytest.approx(metrics[False]["losses/loss"], rel=1e-5, abs=1e-8)
    for a, b in zip(results[False], results[True], strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_micro_batches_hold_whole_groups(tmp_path: Path) -> None:
    trainer = make_trainer(make_config(tmp_path, rollout={"problems_per_step": 3}))
    batch = trainer.collect()
    rows = trainer._shuffled_rows(batch)
    assert sorted(rows.tolist()) == list(range(len(batch)))
    groups = batch.group_ids[rows].tolist()
    # each group's rows are contiguous: the group id changes exactly (groups - 1) times
    assert sum(a != b for a, b in zip(groups, groups[1:], strict=False)) == len(set(groups)) - 1


def test_exact_resume(tmp_path: Path) -> None:
    straight = make_trainer(
        make_config(tmp_path / "straight", steps=4, save_every=2, optim={"minibatches": 2})
    )
    straight.learn()
    checkpoint = tmp_path / "straight" / "checkpoints" / "step-000002"
    assert checkpoint.is_dir()
    resumed = make_trainer(
        make_config(tmp_path / "resumed", steps=4, resume_from=str(checkpoint), optim={"minibatches": 2})
    )
    assert resumed.step == 2
    resumed.learn()
    assert same(parameters(straight), parameters(resumed))
    # and the run really moved: the first checkpoint differs from the end
    first_half = make_trainer(make_config(tmp_path / "other", steps=4, resume_from=str(checkpoint)))
    assert not same(parameters(first_half), parameters(straight))


def test_kl_and_entropy_terms_are_logged(tmp_path: Path) -> None:
    trainer = make_trainer(make_config(tmp_path, loss={"kl_coef": 0.1, "entropy_coef": 0.01}))
    first = trainer.train_step()
    second = trainer.train_step()
    assert first["losses/kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at the start
    assert second["losses/kl"] > 0 and second["charts/entropy"] > 0


def test_a_callback_stops_training_and_a_checkpoint_is_written(tmp_path: Path) -> None:
    trainer = make_trainer(make_config(tmp_path, steps=5), callbacks=[lambda trainer, metrics: False])
    trainer.learn()
    assert trainer.step == 1
    assert (tmp_path / "checkpoints" / "step-000001" / "model").is_dir()
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
    assert (tmp_path / "training.png").is_file()


def test_bad_env_kwargs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="env.kwargs"):
        make_trainer(make_config(tmp_path, env={"kwargs": {"levle": 1}}))


def test_lora_trains_adapters_resumes_and_saves_a_merged_model(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    lora = {"lora": {"r": 4, "alpha": 8}}
    config = make_config(tmp_path / "a", model=lora, steps=2, save_every=1)
    trainer = Trainer(config)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora" in name for name in trainable)
    trainer.policy = ForcedPolicy(trainer.policy)  # rewards that vary, so the adapters move
    trainer.learn()
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)
    assert any(not torch.equal(trainable[n], after[n]) for n in trainable)
    resumed = Trainer(
        make_config(
            tmp_path / "b",
            model=lora,
            steps=2,
            resume_from=str(tmp_path / "a" / "checkpoints" / "step-000001"),
        )
    )
    assert resumed.step == 1 and any(p.requires_grad for p in resumed.model.parameters())
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "final")
    ids = torch.tensor([[1, 70, 71, 72]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, trainer.model(input_ids=ids).logits, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path: Path) -> None:
    plain = make_trainer(make_config(tmp_path / "a"))
    checkpointed = make_trainer(make_config(tmp_path / "b", model={"gradient_checkpointing": True}))
    assert checkpointed.model.is_activation_checkpointing
    batch = plain.collect()
    torch.manual_seed(1)
    plain.update(batch)
    torch.manual_seed(1)
    checkpointed.update(batch)
    for a, b in zip(plain.model.parameters(), checkpointed.model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def helper_logprob(trainer: Trainer, batch, learned: torch.Tensor) -> float:
    from algorithms.forward import token_logprobs

    with torch.no_grad():
        logprobs, _ = token_logprobs(trainer.model, batch.input_ids, batch.attention_mask)
    return float(logprobs[learned].mean())


def test_aipo_learns_the_helpers_tokens_more_than_grpo(tmp_path: Path) -> None:
    gains = {}
    for mode in ("mask", "aipo"):
        trainer = make_trainer(make_config(tmp_path / mode, loss={"agent_mode": mode}, optim={"lr": 3e-3}))
        batch = trainer.collect()
        advantages = group_advantages(batch.rewards, batch.group_ids)
        learned = batch.agent_mask & (advantages > 0).unsqueeze(-1)
        assert learned.any()
        before = helper_logprob(trainer, batch, learned)
        for _ in range(3):
            trainer.update(batch)
        gains[mode] = helper_logprob(trainer, batch, learned) - before
    # shared weights lift the helper's tokens a little under GRPO too; AIPO trains on them directly
    assert gains["aipo"] > gains["mask"] + 0.05 > 0.05


def test_reference_solutions_are_learned_off_policy_with_policy_shaping(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, rollout={"reference_per_group": 1}, loss={"agent_mode": "luffy"}, optim={"lr": 3e-3}
    )
    trainer = make_trainer(config)
    batch = trainer.collect()
    reference = batch.agent_mask & (torch.arange(len(batch)) % 4 == 3).unsqueeze(-1)
    assert reference.any(dim=1).tolist() == [False, False, False, True] * 2
    assert batch.rewards[3::4].tolist() == [1.0, 1.0]  # the reference solution is correct
    assert (group_advantages(batch.rewards, batch.group_ids)[3::4] > 0).all()
    # the sampled turns made context: the update learns only the helper term, here mostly the solutions
    helper_term_only = replace(batch, source=torch.where(batch.policy_mask, PROMPT, batch.source))
    before = helper_logprob(trainer, batch, reference)
    gains = []
    for _ in range(3):
        trainer.update(helper_term_only)
        gains.append(helper_logprob(trainer, batch, reference) - before)
    assert 0.1 < gains[0] < gains[-1]
    metrics = trainer.train_step()  # a real step: 3 sampled episodes and 1 reference per group
    assert metrics["rollout/accuracy"] == pytest.approx((6 * metrics["rollout/sampled_accuracy"] + 2) / 8)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"id": "aipo/Procedural-v0", "kwargs": {}}, "no reference steps"),
        ({"id": "aipo/Code-v1", "kwargs": {}}, "does not score as correct"),
    ],
)
def test_reference_solutions_are_refused_at_start_where_the_task_cannot_write_one(
    tmp_path: Path, env: dict, message: str
) -> None:
    config = make_config(tmp_path, env=env, rollout={"reference_per_group": 1})
    with pytest.raises(ConfigError, match=f"rollout.reference_per_group: .*{message}"):
        make_trainer(config)


def test_helper_tokens_learned_per_step_are_counted_once_over_micro_batches_and_epochs(
    tmp_path: Path,
) -> None:
    optim = {"micro_batch_size": 3, "minibatches": 2, "epochs": 2}
    trainer = make_trainer(make_config(tmp_path, loss={"agent_mode": "aipo"}, optim=optim))
    batch = trainer.collect()
    advantages = group_advantages(batch.rewards, batch.group_ids)
    expected = int((batch.agent_mask & (advantages > 0).unsqueeze(-1)).sum())
    assert expected > 0
    metrics = trainer.update(batch)
    assert metrics["charts/agent_tokens_learned"] == expected
    assert 0 <= metrics["losses/agent_at_min"] <= 1 and "losses/agent_learned" not in metrics
    masked = make_trainer(make_config(tmp_path / "mask", loss={"agent_mode": "mask"}))
    assert masked.update(batch)["charts/agent_tokens_learned"] == 0


def test_the_decoding_step_can_be_switched_off_and_samples_the_same_episodes(tmp_path: Path) -> None:
    batches = {}
    for fast in (True, False):
        trainer = Trainer(make_config(tmp_path / str(fast), rollout={"fast_decode": fast}))
        assert trainer.policy.fast_decode is fast
        batches[fast] = trainer.collect()
    assert torch.equal(batches[True].input_ids, batches[False].input_ids)
    assert torch.equal(batches[True].behaviour_logprobs, batches[False].behaviour_logprobs)


def test_steps_without_learning_signal_are_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, rollout={"max_new_tokens": 4})
    untrained = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=4)  # never solves one
    trainer = Trainer(config, policy=untrained)
    with caplog.at_level(logging.WARNING, logger="algorithms.trainer"):
        for _ in range(2):
            assert trainer.train_step()["rollout/zero_variance_groups"] == 1.0
    warnings = [
        record.getMessage() for record in caplog.records if "no learning signal" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "every group's rewards are equal" in warnings[0] and "warm-up / SFT checkpoint" in warnings[0]


def test_steps_with_learning_signal_are_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = make_trainer(make_config(tmp_path))
    with caplog.at_level(logging.WARNING, logger="algorithms.trainer"):
        assert trainer.train_step()["rollout/zero_variance_groups"] < 1.0
    assert "no learning signal" not in caplog.text


def test_failed_consults_are_counted_by_kind_and_warned_about_once_per_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: every consult is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "max_retries": 0}
    agents = {"reasoning": {"backend": backend, "cache": False}}
    config = make_config(tmp_path, env={"kwargs": {"level": 1, "max_turns": 3, "agents": agents}})
    base = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16)
    trainer = Trainer(config, policy=ForcedPolicy(base, consult_prob=1.0))
    agent = trainer.agents["reasoning"]
    assert all(env.unwrapped.agents["reasoning"] is agent for env in trainer.envs)  # 8 envs, one agent
    failures = []
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            metrics = trainer.train_step()
            failures.append(metrics["rollout/agent_failures"])
            assert metrics["rollout/agent_failures/connection"] == metrics["rollout/agent_failures"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    failed = [message for message in warnings if "consults failed" in message]
    assert len(failed) == 2 and not [message for message in warnings if "agent failed" in message]
    assert all(count >= 8 for count in failures) and agent.stats.failures == sum(failures)
    assert f"step 1: {failures[0]:g} consults failed (connection: {failures[0]:g})" in failed[0]
    assert "APIConnectionError" in failed[0]
    trainer.log.close()


@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8}], ids=["full", "lora"])
def test_train_layers_moves_only_the_top_blocks(tmp_path: Path, lora: dict | None) -> None:
    if lora:
        pytest.importorskip("peft")
    config = make_config(tmp_path, model={"train_layers": 1, "lora": lora}, steps=2, save_every=0)
    trainer = Trainer(config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    top = len(trainer.model.get_base_model().model.layers if lora else trainer.model.model.layers) - 1
    assert trainable and all(
        f"layers.{top}." in n or ("norm.weight" in n and "layers" not in n) for n in trainable
    )
    if lora:
        assert all("lora" in n for n in trainable)
    trainer.policy = ForcedPolicy(trainer.policy)
    trainer.learn()
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before if n not in trainable)
    assert any(not torch.equal(before[n], after[n]) for n in trainable)


def test_train_layers_beyond_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model.train_layers=9 but the model has 4 blocks"):
        Trainer(make_config(tmp_path, model={"train_layers": 9}))


def own_voice_logprob(trainer: Trainer, voiced, learned: torch.Tensor) -> float:
    from algorithms.forward import token_logprobs

    with torch.no_grad():
        logprobs, _ = token_logprobs(trainer.model, voiced.input_ids, voiced.attention_mask)
    return float(logprobs[learned].mean())


def test_an_own_voice_step_learns_the_reply_where_the_policy_writes_it(tmp_path: Path) -> None:
    from algorithms.own_voice import voiced_batch

    gains = {}
    for mode in ("aipo", "own_voice"):
        config = make_config(tmp_path / mode, loss={"agent_mode": mode}, optim={"lr": 3e-3})
        trainer = make_trainer(config)
        batch = trainer.collect()
        advantages = group_advantages(batch.rewards, batch.group_ids)
        voiced = voiced_batch(batch, trainer.policy, trainer.envs[0].unwrapped.protocol)
        learned = voiced.agent_mask & (advantages > 0).unsqueeze(-1)  # the replies, in the policy's voice
        before, weights = own_voice_logprob(trainer, voiced, learned), parameters(trainer)
        metrics = trainer.update(batch)
        assert not same(weights, parameters(trainer))
        if mode == "own_voice":
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())
            assert metrics["charts/agent_tokens_learned"] == int(learned.sum()) > 0
            assert metrics["losses/own_voice_ratio"] > 0 and "losses/own_voice_clipped" in metrics
        for _ in range(2):
            trainer.update(batch)
        gains[mode] = own_voice_logprob(trainer, voiced, learned) - before
    assert gains["own_voice"] > gains["aipo"] > 0


def test_own_voice_without_consults_is_the_same_update_as_the_other_modes(tmp_path: Path) -> None:
    results, batch = {}, None
    for mode in ("mask", "aipo", "own_voice"):
        base = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16)
        trainer = Trainer(
            make_config(tmp_path / mode, loss={"agent_mode": mode}),
            policy=ForcedPolicy(base, consult_prob=0.0),
        )
        batch = batch or trainer.collect()
        assert not batch.agent_mask.any()
        torch.manual_seed(1)
        results[mode] = (trainer.update(batch)["losses/loss"], parameters(trainer))
    for mode in ("aipo", "own_voice"):
        assert results[mode][0] == pytest.approx(results["mask"][0], rel=1e-6)
        for a, b in zip(results[mode][1], results["mask"][1], strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_own_voice_gradient_accumulation_equals_one_big_micro_batch(tmp_path: Path, aggregation: str) -> None:
    loss = {"agent_mode": "own_voice", "aggregation": aggregation, "agent_positive_only": False}
    whole = make_trainer(make_config(tmp_path / "a", loss=loss, optim={"micro_batch_size": 8}))
    parts = make_trainer(make_config(tmp_path / "b", loss=loss, optim={"micro_batch_size": 3}))
    batch = whole.collect()
    assert batch.agent_mask.any()
    torch.manual_seed(1)
    whole.update(batch)
    torch.manual_seed(1)
    parts.update(batch)
    for a, b in zip(whole.model.parameters(), parts.model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)
