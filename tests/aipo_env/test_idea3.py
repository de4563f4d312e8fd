"""The Idea3 two-player env: PettingZoo API, stage order, what each player sees, segments, scores."""

from __future__ import annotations

import pytest
from pettingzoo.test import parallel_api_test

from aipo_env.idea3 import PLAYERS, Idea3Env, idea3_aec_env
from aipo_env.tasks.arithmetic import ArithmeticTask


def _play(env: Idea3Env, texts: list[dict[str, str]]) -> tuple[dict, dict]:
    rewards, infos = {}, {}
    for actions in texts:
        _, rewards, _, _, infos = env.step(actions)
    return rewards, infos


def test_passes_pettingzoo_parallel_api_test() -> None:
    parallel_api_test(Idea3Env(), num_cycles=5)


def test_aec_turn_order_is_player_0_then_player_1_in_each_stage() -> None:
    env = idea3_aec_env()
    env.reset(options={"index": 0})
    order = []
    for agent in env.agent_iter():
        _, _, terminated, truncated, info = env.last()
        order.append((agent, info["stage"]))
        env.step(None if terminated or truncated else f"{agent} says hi")
    stages = [(player, stage) for stage in ("share", "analyse", "fuse") for player in PLAYERS]
    assert order[:6] == stages
    assert [stage for _, stage in order[6:]] == ["done", "done"]


def test_a_player_sees_the_partner_idea_only_after_sharing_and_with_its_own_framing() -> None:
    env = Idea3Env(ArithmeticTask(level=1))
    observations, _ = env.reset(options={"index": 3, "modes": {"player_1": "compete"}})
    problem_prompt = env.task.prompt(env.task.problem(3))
    assert observations["player_0"] == observations["player_1"] == problem_prompt + "\n"
    observations, *_ = env.step({"player_0": "IDEA-A", "player_1": "IDEA-B"})
    assert "IDEA-B" in observations["player_0"] and "IDEA-A" in observations["player_1"]
    assert "team" in observations["player_0"] and "rivals" in observations["player_1"]
    observations, *_ = env.step({"player_0": "CRIT-A", "player_1": "CRIT-B"})
    assert "CRIT-B" in observations["player_0"] and "CRIT-A" in observations["player_1"]
    # the fuse stage ends with the problem restated, as a single-player episode begins
    assert all(observation.endswith(problem_prompt + "\n") for observation in observations.values())


def test_each_final_answer_is_scored_on_its_own_and_segments_label_who_wrote_what() -> None:
    env = Idea3Env(ArithmeticTask(level=1))
    env.reset(options={"index": 0})
    answer = env.task.problem(0).answer
    rewards, infos = _play(
        env,
        [
            {"player_0": f"\\boxed{{{answer}}}", "player_1": "no idea"},
            {"player_0": "looks wrong", "player_1": "looks right"},
            {"player_0": "\\boxed{-1}", "player_1": f"so \\boxed{{{answer}}}"},
        ],
    )
    assert rewards == {"player_0": 0.0, "player_1": 1.0}
    assert infos["player_0"]["share_score"] == 1.0 and not infos["player_0"]["correct"]
    record = infos["player_1"]["episode"]
    assert record.texts("policy") == ["no idea", "looks right", f"so \\boxed{{{answer}}}"]
    partner = [segment for segment in record.segments if segment.source == "agent"]
    assert [segment.agent for segment in partner] == ["player_0", "player_0"]
    assert "\\boxed{" in partner[0].text and "looks wrong" in partner[1].text
    assert [segment.source for segment in record.segments][:2] == ["prompt", "policy"]
    assert env.agents == []


def test_bad_use_gets_clear_errors() -> None:
    env = Idea3Env()
    with pytest.raises(ValueError, match="modes"):
        env.reset(options={"index": 0, "modes": {"player_0": "argue"}})
    with pytest.raises(ValueError, match="index"):
        env.reset(options={"index": 10**9})
    env.reset(options={"index": 0})
    with pytest.raises(ValueError, match="missing"):
        env.step({"player_0": "x"})
    _play(env, [dict.fromkeys(PLAYERS, "x")] * 3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict.fromkeys(PLAYERS, "x"))
