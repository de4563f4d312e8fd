"""log pi_agent on the policy's tokens: alignment rules, fallback, and the way through env, rollout and trainer."""

from __future__ import annotations

import copy
import importlib
import logging
import random
import re
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from scripted_lm import ForcedPolicy

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.agents import Agent, AgentReply
from aipo_env.episode import EpisodeRecord, Segment, TokenLogprobs
from algorithms.batch import AGENT, collate
from algorithms.config import TrainConfig
from algorithms.helper_logprobs import spread_logprobs
from algorithms.metrics import rollout_metrics
from algorithms.rollout import collect, tokenize_episode
from algorithms.trainer import Trainer
from policies import HFPolicy

rollout_module = importlib.import_module("algorithms.rollout")  # the package exports a function of that name
OPENING, CLOSING = '\n<feedback agent="reasoning">', "</feedback>\n"
REPLY = ("Add", " 3", " and", " 4", ".")
LOGPROBS = (-0.5, -1.0, -0.25, -2.0, -0.125)
START = len(OPENING)


def helper_tokens(pieces=REPLY, logprobs=LOGPROBS, start=START) -> TokenLogprobs:
    return TokenLogprobs(start, start + len("".join(pieces)), tuple(pieces), tuple(logprobs))


def test_same_tokenizer_gives_each_token_its_own_log_prob_and_the_wrapper_zero():
    policy = [OPENING, *REPLY, CLOSING]
    spread = spread_logprobs(policy, "".join(policy), helper_tokens())
    assert spread == [0.0, *LOGPROBS, 0.0]


def test_a_finer_policy_tokenizer_puts_each_helper_token_on_its_last_character():
    text = OPENING + "".join(REPLY) + CLOSING
    spread = spread_logprobs(list(text), text, helper_tokens())  # one policy token per character
    expected = [0.0] * len(text)
    end = len(OPENING)
    for piece, logprob in zip(REPLY, LOGPROBS, strict=True):
        end += len(piece)
        expected[end - 1] = logprob
    assert spread == expected


def test_a_coarser_policy_tokenizer_sums_the_helper_tokens_inside_and_straddling_ones_where_they_end():
    text = OPENING + "Add 3 and 4." + CLOSING
    coarse = [OPENING + "Add 3", " and 4.", CLOSING]  # the first token straddles wrapper and reply
    assert spread_logprobs(coarse, text, helper_tokens()) == [-1.5, -2.375, 0.0]
    straddling = ["Ad", "d 3 a", "nd 4."]  # "Add" and " and" cross policy boundaries
    assert spread_logprobs(straddling, "Add 3 and 4.", helper_tokens(start=0)) == [0.0, -1.5, -2.375]


def test_any_two_tilings_keep_the_total_and_every_sum_between_shared_boundaries():
    rng = random.Random(0)
    text = "The product 12 * 7 = 84, so the answer is 84."
    for _ in range(200):
        helper_cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        policy_cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        helper = [text[a:b] for a, b in zip([0, *helper_cuts], [*helper_cuts, len(text)], strict=True)]
        policy = [text[a:b] for a, b in zip([0, *policy_cuts], [*policy_cuts, len(text)], strict=True)]
        logprobs = [-rng.random() for _ in helper]
        spread = spread_logprobs(policy, text, TokenLogprobs(0, len(text), tuple(helper), tuple(logprobs)))
        assert spread is not None and sum(spread) == pytest.approx(sum(logprobs))
        shared = sorted(set(helper_cuts) & set(policy_cuts))  # a prefix ending on both tilings' boundary
        for cut in shared:
            inside_policy = policy_cuts.index(cut) + 1
            inside_helper = helper_cuts.index(cut) + 1
            assert sum(spread[:inside_policy]) == pytest.approx(sum(logprobs[:inside_helper]))


def test_a_character_split_over_helper_tokens_counts_once_where_it_completes():
    text = "é!"
    helper = TokenLogprobs(0, 2, ("", "é", "!"), (-1.0, -0.5, -0.25))
    assert spread_logprobs(["é", "!"], text, helper) == [-1.5, -0.25]


def test_pieces_that_do_not_match_the_reply_are_refused():
    text = OPENING + "Add 3 and 4." + CLOSING
    policy = list(text)
    assert spread_logprobs(policy, text, helper_tokens(pieces=("Add", " 3", " and", " 5", "."))) is None
    assert spread_logprobs(policy, text, TokenLogprobs(len(OPENING), len(text), None, LOGPROBS)) is None
    assert spread_logprobs(policy, text, helper_tokens(logprobs=LOGPROBS[:2])) is None
    assert spread_logprobs(policy[:-1], text, helper_tokens()) is None  # policy pieces must tile the text


@pytest.fixture(scope="module")
def tiny() -> HFPolicy:
    return HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=8)


def record_with(*helpers: TokenLogprobs | None) -> EpisodeRecord:
    segments = [Segment("prompt", None, "What is 3 + 4?\n"), Segment("policy", None, "Let me ask.")]
    for helper in helpers:
        segments.append(Segment("agent", "reasoning", OPENING + "Add 3 and 4." + CLOSING, helper))
    return EpisodeRecord(segments=segments)


def test_tokenize_episode_places_them_and_falls_back_to_zero_with_one_warning(tiny, caplog, monkeypatch):
    monkeypatch.setattr(rollout_module, "_warned_unaligned", False)
    episode = tokenize_episode(tiny, record_with(helper_tokens()), [], group=0)
    sources, values = torch.tensor(episode.sources), torch.tensor(episode.agent_logprobs)
    assert values[sources == AGENT].sum().item() == pytest.approx(sum(LOGPROBS))
    assert values[sources != AGENT].abs().sum() == 0 and episode.unaligned_agent_segments == 0

    wrong = helper_tokens(pieces=("Add", " 3", " and", " 5", "."))
    with caplog.at_level(logging.WARNING, logger="algorithms.rollout"):
        episode = tokenize_episode(tiny, record_with(wrong, helper_tokens(), wrong), [], group=0)
    sources, values = torch.tensor(episode.sources), torch.tensor(episode.agent_logprobs)
    per_segment = values[sources == AGENT].reshape(3, -1).sum(dim=1)
    assert per_segment.tolist() == pytest.approx([0.0, sum(LOGPROBS), 0.0])
    assert episode.unaligned_agent_segments == 2
    assert len(caplog.records) == 1 and "do not concatenate" in caplog.records[0].getMessage()


def test_unplaceable_segments_are_counted_in_the_batch_and_its_rollout_metrics(tiny):
    wrong = helper_tokens(pieces=("Add", " 3", " and", " 5", "."))
    placed = tokenize_episode(tiny, record_with(helper_tokens()), [], group=0)
    unplaced = tokenize_episode(tiny, record_with(wrong, wrong), [], group=0)
    batch = collate([placed, unplaced, unplaced], pad_id=0)
    assert batch.unaligned_agent_segments.tolist() == [0, 2, 2]
    assert batch.select([0, 2]).unaligned_agent_segments.tolist() == [0, 2]
    assert rollout_metrics(batch)["rollout/unaligned_agent_segments"] == pytest.approx(4 / 3)


class WordByWord(Agent):
    """Reveals the answer and reports a log-prob for every word (leading space included)."""

    name = "reasoning"
    reference_access = True

    def reply(self, request):
        text = f"Work it out: the answer is {request.problem.answer}."
        pieces = tuple(re.findall(r"\s*\S+", text))
        return AgentReply(
            text, token_logprobs=tuple(-(i + 1) / 8 for i in range(len(pieces))), token_texts=pieces
        )


def expected_agent_logprobs(record: EpisodeRecord) -> list[float]:
    """On the byte-level tiny tokenizer, one token per character: each word's log-prob on its last one."""
    values: list[float] = []
    for segment in record.segments:
        if segment.source != "agent":
            continue
        row = [0.0] * len(segment.text)
        helper = segment.logprobs
        end = helper.start
        for piece, logprob in zip(helper.tokens, helper.logprobs, strict=True):
            end += len(piece)
            row[end - 1] = logprob
        values += row
    return values


def test_reported_log_probs_reach_the_episode_batch(tiny):
    torch.manual_seed(0)
    policy = ForcedPolicy(tiny, consult_prob=1.0)
    envs = [
        gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, agents={"reasoning": WordByWord()})
        for _ in range(4)
    ]
    batch = collect(policy, envs, [0, 1], group_size=2)
    assert all(record.consults["reasoning"] == 1 for record in batch.records)
    for row, record in enumerate(batch.records):
        helper = batch.agent_logprobs[row][batch.agent_mask[row]]
        assert helper.tolist() == pytest.approx(expected_agent_logprobs(record))
        assert batch.agent_logprobs[row][~batch.agent_mask[row]].abs().sum() == 0


def make_trainer(output_dir: Path) -> Trainer:
    config = TrainConfig.model_validate(
        {
            "steps": 1,
            "output_dir": str(output_dir),
            "progress": False,
            "env": {"kwargs": {"level": 1, "max_turns": 3}},
            "rollout": {"problems_per_step": 2, "group_size": 4, "max_new_tokens": 16},
            "optim": {"lr": 1e-3, "micro_batch_size": 8},
        }
    )
    trainer = Trainer(
        config, policy=ForcedPolicy(HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16))
    )
    # the config must stay serialisable, so the helper that reports log-probs is put into the envs here
    trainer.envs = [
        gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, agents={"reasoning": WordByWord()})
        for _ in range(8)
    ]
    return trainer


def test_raw_and_luffy_coefficients_use_the_reported_log_probs(tmp_path: Path):
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path)
    batch = trainer.collect()
    assert (batch.agent_logprobs[batch.agent_mask] < 0).any()
    unreported = replace(batch, agent_logprobs=torch.zeros_like(batch.agent_logprobs))
    initial = copy.deepcopy(trainer.model.state_dict())
    coefficients = {}
    for mode in ("raw", "luffy"):
        trainer.config.loss.agent_mode = mode
        coefficients[mode] = []
        for episodes in (batch, unreported):
            trainer.model.load_state_dict(initial)
            coefficients[mode].append(trainer.update(episodes)["losses/agent_coef"])
        assert coefficients[mode][1] > 0, "no helper token was learned: the test needs a consulting winner"
        assert coefficients[mode][0] != pytest.approx(coefficients[mode][1]), mode
    # raw: rho = pi_theta / pi_agent is larger where pi_agent < 1 is known
    assert coefficients["raw"][0] > coefficients["raw"][1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_local_model_helper_with_its_own_tokenizer_keeps_every_log_prob(tiny, tmp_path):
    from aipo_env.agents import AgentConfig
    from policies.tiny_chat import save_tiny_chat_model

    model = save_tiny_chat_model(tmp_path / "helper")  # word-level tokenizer; the policy reads bytes
    helper = AgentConfig.model_validate(
        {
            "backend": {"kind": "transformers", "model": str(model), "logprobs": True},
            "sampling": {"max_tokens": 6},
        }
    )
    torch.manual_seed(0)
    envs = [
        gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, agents={"reasoning": helper}) for _ in range(2)
    ]
    episodes = rollout_module.rollout(ForcedPolicy(tiny, consult_prob=1.0), envs, [0, 1], group_size=1)
    for episode in episodes:
        (segment,) = [segment for segment in episode.record.segments if segment.source == "agent"]
        reported = segment.logprobs
        assert reported is not None and len(reported.logprobs) == 6 and episode.unaligned_agent_segments == 0
        sources, values = (
            torch.tensor(episode.sources),
            torch.tensor(episode.agent_logprobs, dtype=torch.float64),
        )
        placed = values[sources == AGENT]
        assert placed.sum().item() == pytest.approx(sum(reported.logprobs))
        assert int((placed != 0).sum()) == 6  # one policy token (a word's last byte) per helper token
    for env in envs:
        env.close()
