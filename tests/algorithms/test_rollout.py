from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from scripted_lm import ForcedPolicy

import aipo_env  # noqa: F401  (registers the ids)
from algorithms.batch import AGENT, POLICY, PROMPT
from algorithms.forward import token_logprobs
from algorithms.metrics import rollout_metrics
from algorithms.rollout import Guide, collect, play, rollout
from policies import ConsultFirst, HFPolicy


@pytest.fixture(scope="module")
def policy() -> ForcedPolicy:
    torch.manual_seed(0)
    return ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16), consult_prob=0.5)


def make_envs(count: int, **kwargs) -> list[gym.Env]:
    return [gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, **kwargs) for _ in range(count)]


def test_masks_are_exact_segment_by_segment(policy: ForcedPolicy) -> None:
    episodes = rollout(policy, make_envs(8), [0, 1], group_size=4)
    assert [episode.group for episode in episodes] == [0, 0, 0, 0, 1, 1, 1, 1]
    decode = policy.tokenizer.decode
    consulted = 0
    for episode in episodes:
        ids, sources = torch.tensor(episode.token_ids), torch.tensor(episode.sources)
        record = episode.record
        assert decode(ids[sources == AGENT].tolist()) == "".join(record.texts("agent"))
        policy_text = decode(ids[sources == POLICY].tolist(), skip_special_tokens=True)
        assert policy_text == "".join(record.texts("policy"))
        assert decode(ids[sources == PROMPT].tolist(), skip_special_tokens=True) == "".join(
            record.texts("prompt")
        )
        consulted += record.consults["reasoning"]
    assert 0 < consulted < len(episodes)


def test_behaviour_logprobs_are_those_of_the_training_sequence(policy: ForcedPolicy) -> None:
    batch = collect(policy, make_envs(4), [2], group_size=4)
    with torch.no_grad():
        logprobs, _ = token_logprobs(policy.model, batch.input_ids, batch.attention_mask)
    mask = batch.policy_mask
    # the contexts the policy generated from are exactly the tokens it is trained on
    assert torch.allclose(logprobs[mask], batch.behaviour_logprobs[mask], atol=1e-4)
    assert batch.rewards.tolist() == [float(r.correct) for r in batch.records]
    assert set(batch.rewards.tolist()) == {0.0, 1.0}


def test_select_trims_padding(policy: ForcedPolicy) -> None:
    batch = collect(policy, make_envs(4), [3], group_size=4)
    shortest = int(batch.attention_mask.sum(dim=1).argmin())
    part = batch.select([shortest])
    assert part.input_ids.shape[1] == int(batch.attention_mask[shortest].sum())
    assert part.records[0] is batch.records[shortest]


def test_a_sampling_policy_plays_whole_episodes() -> None:
    sampler = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=8)
    batch = collect(sampler, make_envs(4), [0, 1], group_size=2)
    assert len(batch) == 4 and batch.policy_mask.any(dim=1).all()


def test_play_runs_scripted_baselines_and_checks_env_count() -> None:
    records = play(ConsultFirst("reasoning"), make_envs(3), [0, 1, 2])
    assert [record.correct for record in records] == [True, True, True]
    with pytest.raises(ValueError, match="need 4 envs"):
        play(ConsultFirst("reasoning"), make_envs(3), [0, 1], group_size=2)


def test_guided_episodes_open_with_a_scripted_consult_that_is_not_learned() -> None:
    never_consults = ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu"), consult_prob=0.0)
    guide = Guide(per_group=2, agent="reasoning", query="next step")
    batch = collect(never_consults, make_envs(6), [0, 1], group_size=3, guide=guide)
    opening = '<consult agent="reasoning">next step</consult>'
    decode = never_consults.tokenizer.decode
    for position, record in enumerate(batch.records):
        guided = position % 3 < 2
        assert record.consults["reasoning"] == int(guided)
        # level 1 is one step: the revealed step is the answer, so guided episodes are correct
        assert record.correct == guided
        ids, sources = batch.input_ids[position], batch.source[position]
        learned = decode(ids[sources == POLICY].tolist(), skip_special_tokens=True)
        assert opening not in learned
        assert (opening in decode(ids[sources == PROMPT].tolist())) == guided
        assert (sources == AGENT).any() == guided
    with torch.no_grad():
        logprobs, _ = token_logprobs(never_consults.model, batch.input_ids, batch.attention_mask)
    mask = batch.policy_mask
    assert torch.allclose(logprobs[mask], batch.behaviour_logprobs[mask], atol=1e-4)


def test_a_guide_must_name_one_of_the_envs_agents(policy: ForcedPolicy) -> None:
    with pytest.raises(ValueError, match="guide_agent='oracle'"):
        rollout(policy, make_envs(2), [0], group_size=2, guide=Guide(per_group=1, agent="oracle"))
    with pytest.raises(ValueError, match="do not fit"):
        rollout(policy, make_envs(2), [0], group_size=2, guide=Guide(per_group=3))


def test_reference_episodes_play_the_written_solution_as_helper_tokens() -> None:
    from aipo_env.tasks.base import written_solution

    never_consults = ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu"), consult_prob=0.0)
    envs = [gym.make("aipo/Arithmetic-v0", level=2, max_turns=3) for _ in range(6)]
    guide = Guide(references=1)
    batch = collect(never_consults, envs, [0, 1], group_size=3, guide=guide)
    sampled = collect(never_consults, envs, [0, 1], group_size=3)
    eos = never_consults.tokenizer.eos_token_id
    for position, record in enumerate(batch.records):
        ids, sources = batch.input_ids[position], batch.source[position]
        if position % 3 < 2:  # sampled as without references
            alone = sampled.input_ids[position][sampled.attention_mask[position]]
            assert torch.equal(ids[batch.attention_mask[position]], alone)
            assert (sources == POLICY).any() and not (sources == AGENT).any()
            continue
        solution = written_solution(envs[position].unwrapped.problem)
        assert record.texts("policy") == [solution] and record.correct and batch.rewards[position] == 1.0
        assert solution.count("Step ") == 2  # level 2: a two-step solution
        learned = ids[sources == AGENT].tolist()
        assert learned == [*never_consults.encode_text(solution), eos]  # the solution, then stop
        assert not (sources == POLICY).any()
        assert batch.agent_logprobs[position].abs().max() == 0  # pi_agent = 1: off-policy
    metrics = rollout_metrics(batch, reference_per_group=1)
    played = [record.correct for position, record in enumerate(batch.records) if position % 3 < 2]
    assert metrics["rollout/sampled_accuracy"] == pytest.approx(sum(played) / 4)
    assert metrics["rollout/accuracy"] == pytest.approx((sum(played) + 2) / 6)
    with pytest.raises(ValueError, match="do not fit"):
        rollout(never_consults, envs, [0, 1], group_size=3, guide=Guide(per_group=2, references=2))


def test_reference_episodes_need_a_task_with_worked_solutions() -> None:
    from aipo_env.tasks.base import Problem, written_solution

    with pytest.raises(ValueError, match="no worked solutions for rollout.reference_per_group"):
        written_solution(Problem("q", "What is 1 + 1?", "2", "listed"))
