"""Real models as the helpers: SmolLM2 and Gemma-3 answer consults through the transformers
backend, and their token log-probs reach AIPO's coefficient on the policy's tokens."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import aipo_env  # noqa: F401  (registers the ids)
from algorithms.batch import AGENT
from algorithms.rollout import Guide, rollout
from policies import HFPolicy


def helper_envs(model: str, count: int) -> list[gym.Env]:
    backend = {"kind": "transformers", "model": model, "logprobs": True, "dtype": "float32"}
    agents = {"reasoning": {"backend": backend, "sampling": {"max_tokens": 12, "temperature": 1.0}}}
    return [gym.make("aipo/Arithmetic-v0", level=1, max_turns=2, agents=agents) for _ in range(count)]


@pytest.mark.parametrize("helper", ["smollm2-135m-instruct", "gemma3-270m"])
def test_a_real_helper_answers_and_its_logprobs_reach_the_policy_tokens(
    smollm2: HFPolicy, helper: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("smollm2_dir" if helper.startswith("smollm2") else "gemma3_dir")
    envs = helper_envs(helper, 2)  # the name resolves to the prepared directory
    episodes = rollout(smollm2, envs, [0], group_size=2, guide=Guide(per_group=2))
    for episode in episodes:
        (reply,) = [segment for segment in episode.record.segments if segment.source == "agent"]
        assert reply.logprobs is not None and reply.logprobs.tokens, "the helper returned its log-probs"
        assert all(value <= 0 for value in reply.logprobs.logprobs)
        assert episode.unaligned_agent_segments == 0
        placed = [
            value
            for value, source in zip(episode.agent_logprobs, episode.sources, strict=True)
            if source == AGENT
        ]
        # every helper token's log-prob lands on one policy token: the sums agree (other tokenizer too)
        assert math.isclose(sum(placed), sum(reply.logprobs.logprobs), rel_tol=1e-5, abs_tol=1e-4)
        assert sum(placed) < 0
    for env in envs:
        env.close()
