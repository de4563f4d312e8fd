"""The consult-decision env: Gymnasium and SB3 conventions, rewards, the noisy solver, SB3 training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.decision import (
    FEATURES,
    AlwaysConsult,
    ConsultDecisionEnv,
    Decision,
    NeverConsult,
    NoisyArithmeticSolver,
    ThresholdRule,
)
from aipo_env.envs import ArithmeticEnv

torch.set_num_threads(1)
FEATURE = {name: index for index, name in enumerate(FEATURES)}


def always_wrong() -> NoisyArithmeticSolver:
    return NoisyArithmeticSolver(p_easy=1.0, p_hard=1.0)


def never_wrong() -> NoisyArithmeticSolver:
    return NoisyArithmeticSolver(p_easy=0.0, p_hard=0.0)


def play(env: ConsultDecisionEnv, actions: list[Decision], seed: int = 0) -> tuple[float, dict]:
    """Play ``actions`` then continue until the episode ends; returns (return, last info)."""
    env.reset(seed=seed)
    total, info, done = 0.0, {}, False
    for action in [*actions, *[Decision.CONTINUE] * 40]:
        _, reward, done, truncated, info = env.step(action)
        total += reward
        if done or truncated:
            break
    assert done
    return total, info


def run_policy(policy, env: ConsultDecisionEnv, episodes: int) -> tuple[float, float, float]:
    """(accuracy, consults per episode, mean return) of a policy with SB3's predict."""
    correct = consults = total = 0.0
    for episode in range(episodes):
        observation, _ = env.reset(seed=episode)
        done = False
        while not done:
            observation, reward, done, _, info = env.step(policy.predict(observation)[0])
            total += reward
        correct += info["correct"]
        consults += sum(info["consults"].values())
    return correct / episodes, consults / episodes, total / episodes


# -- conventions ------------------------------------------------------------------------------


def test_passes_sb3_and_gymnasium_env_checkers():
    sb3_check_env(ConsultDecisionEnv(), warn=True)
    made = gym.make("aipo/ConsultDecision-v0", consult_cost=0.1, level=(2, 4), render_mode="ansi")
    gymnasium_check_env(made.unwrapped)


def test_observation_reports_budget_progress_and_difficulty():
    env = ConsultDecisionEnv(level=5, max_consults=4, solver=never_wrong())
    observation, info = env.reset(seed=3)
    assert observation.shape == (len(FEATURES),) and env.observation_space.contains(observation)
    assert info["difficulty"] == 5 and observation[FEATURE["difficulty"]] == pytest.approx(0.5)
    assert observation[FEATURE["consults_left"]] == 1.0 and observation[FEATURE["steps_written"]] == 0.0
    assert observation[FEATURE["steps_left"]] == pytest.approx(0.4)  # level 5 chains have 4 steps
    observation, *_ = env.step(Decision.CONTINUE)
    assert observation[FEATURE["steps_written"]] == pytest.approx(0.1)
    assert (
        0.0 < observation[FEATURE["step_confidence"]] < 1.0
        and not observation[FEATURE["last_step_confirmed"]]
    )
    observation, *_ = env.step(Decision.REASONING)
    assert observation[FEATURE["reasoning_used"]] == pytest.approx(0.25)
    assert observation[FEATURE["consults_left"]] == pytest.approx(0.75)
    assert observation[FEATURE["last_step_confirmed"]] == 1.0  # the revealed step 2 is confirmed
    assert observation[FEATURE["steps_written"]] == pytest.approx(0.2)
    for _ in range(2):
        observation, *_ = env.step(Decision.CONTINUE)
    assert observation[FEATURE["has_candidate"]] == 1.0
    _, _, terminated, _, info = env.step(Decision.CONTINUE)
    assert terminated and info["correct"] and info["is_success"]


def test_same_seed_same_episode():
    env = ConsultDecisionEnv()
    actions = [Decision.CONTINUE, Decision.VERIFY, Decision.CONTINUE, Decision.REASONING]
    assert play(env, actions, seed=11) == play(env, actions, seed=11)


# -- rewards ------------------------------------------------------------------------------------


def test_return_is_score_minus_cost_of_each_answered_consult():
    costs = {"verify": 0.05, "knowledge": 0.01, "reasoning": 0.2}
    env = ConsultDecisionEnv(level=4, consult_cost=costs, solver=never_wrong())
    env.reset(seed=0)
    _, reward, *_ = env.step(Decision.KNOWLEDGE)
    assert reward == pytest.approx(-0.01)
    total, info = play(env, [Decision.CONTINUE, Decision.VERIFY, Decision.REASONING])
    assert info["correct"] and info["consults"] == {"verify": 1, "knowledge": 0, "reasoning": 1}
    assert total == pytest.approx(1.0 - 0.05 - 0.2)


def test_consults_beyond_the_budget_are_refused_free():
    env = ConsultDecisionEnv(
        level=10,
        consult_cost=0.1,
        max_consults=2,
        max_consults_per_agent={"verify": 1, "knowledge": 0, "reasoning": 2},
    )
    env.reset(seed=0)
    assert env.step(Decision.KNOWLEDGE)[-1]["outcome"] == "refused"
    env.step(Decision.VERIFY)
    _, reward, _, _, info = env.step(Decision.VERIFY)
    assert info["outcome"] == "refused" and reward == 0.0
    env.step(Decision.REASONING)
    observation, reward, _, _, info = env.step(Decision.REASONING)
    assert info["outcome"] == "refused" and reward == 0.0 and observation[FEATURE["consults_left"]] == 0.0


def test_answer_now_ends_the_episode_and_the_decision_limit_forces_an_answer():
    env = ConsultDecisionEnv(level=10)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(Decision.ANSWER)
    assert terminated and not info["correct"] and reward == 0.0  # the start value is not the answer
    limited = ConsultDecisionEnv(level=10, max_decisions=3)
    limited.reset(seed=0)
    for _ in range(2):
        assert not limited.step(Decision.CONTINUE)[2]
    _, _, terminated, _, info = limited.step(Decision.CONTINUE)
    assert terminated and info["outcome"] == "wrote_step+forced_answer" and "correct" in info


def test_info_works_with_monitor_and_vec_env_wrappers():
    _, raw = play(ConsultDecisionEnv(), [])
    assert "episode" not in raw  # the reasoning env's record would clash with the wrappers' key
    monitored = Monitor(ConsultDecisionEnv(consult_cost=0.1))
    returned, info = play(monitored, [Decision.REASONING])
    assert info["episode"]["r"] == pytest.approx(returned, abs=1e-5)
    recorded = gym.wrappers.RecordEpisodeStatistics(ConsultDecisionEnv())
    _, info = play(recorded, [Decision.VERIFY])
    assert "r" in info["episode"]
    vec = VecMonitor(DummyVecEnv([ConsultDecisionEnv, ConsultDecisionEnv]))
    vec.reset()
    finished = []
    for _ in range(30):
        _, _, dones, infos = vec.step(np.array([Decision.CONTINUE, Decision.REASONING]))
        finished += [info for done, info in zip(dones, infos, strict=True) if done]
    vec.close()
    assert finished and all({"r", "l"} <= set(info["episode"]) and "is_success" in info for info in finished)


# -- the noisy solver ---------------------------------------------------------------------------


def test_solver_slips_more_often_on_harder_problems():
    def error_rate(level: int) -> float:
        env = ConsultDecisionEnv(level=level)
        errors = steps = 0
        for seed in range(200):
            _, info = play(env, [], seed=seed)
            errors += info["solver_errors"]
            steps += env.solver.signals().steps_written
        return errors / steps

    easy, middle, hard = error_rate(2), error_rate(6), error_rate(10)
    assert easy < middle < hard
    assert NoisyArithmeticSolver().error_rate(1) < NoisyArithmeticSolver().error_rate(10)


def test_solver_confidence_is_lower_on_wrong_steps():
    def mean_confidence(solver: NoisyArithmeticSolver) -> float:
        env = ConsultDecisionEnv(level=6, solver=solver)
        values = []
        for seed in range(50):
            env.reset(seed=seed)
            observation, *_ = env.step(Decision.CONTINUE)
            values.append(observation[FEATURE["step_confidence"]])
        return float(np.mean(values))

    assert mean_confidence(always_wrong()) < mean_confidence(never_wrong()) - 0.3


def test_reasoning_repairs_the_wrong_step_and_verify_flags_it_for_a_redo():
    env = ConsultDecisionEnv(level=4, solver=always_wrong(), render_mode="ansi")
    _, alone = play(env, [])
    assert not alone["correct"]
    _, helped = play(env, [Decision.CONTINUE, Decision.REASONING, Decision.REASONING, Decision.REASONING])
    assert helped["correct"] and '<feedback agent="reasoning">Step 1:' in env.render()
    env.reset(seed=0)
    env.step(Decision.CONTINUE)
    _, _, _, _, info = env.step(Decision.VERIFY)
    assert "Incorrect" in env.render() and info["steps_written"] == 1
    assert env.solver.errors == 2  # the flagged step was redone (and this solver slipped again)


def test_verify_confirms_a_right_step_and_knowledge_changes_no_step():
    env = ConsultDecisionEnv(level=4, solver=never_wrong())
    env.reset(seed=0)
    env.step(Decision.CONTINUE)
    observation, *_ = env.step(Decision.VERIFY)
    assert (
        observation[FEATURE["last_step_confirmed"]] == 1.0 and observation[FEATURE["min_confidence"]] == 1.0
    )
    before = observation[FEATURE["steps_written"]]
    observation, _, _, _, info = env.step(Decision.KNOWLEDGE)
    assert info["outcome"] == "consulted" and observation[FEATURE["steps_written"]] == before


def test_selective_consulting_beats_never_and_always_at_a_mid_cost():
    env = ConsultDecisionEnv(consult_cost=0.1, split="test")
    never = run_policy(NeverConsult(), env, 300)
    always = run_policy(AlwaysConsult(), env, 300)
    selective = run_policy(ThresholdRule(0.5), env, 300)
    assert selective[2] > never[2] + 0.1 and selective[2] > always[2] + 0.1
    assert never[1] == 0.0 < selective[1] < always[1]


# -- bad input --------------------------------------------------------------------------------


def test_bad_arguments_and_actions_are_reported():
    with pytest.raises(ValueError, match="consult_cost must name each of"):
        ConsultDecisionEnv(consult_cost={"verify": 0.1})
    with pytest.raises(ValueError, match="consult='agents'"):
        ConsultDecisionEnv(env=ArithmeticEnv(consult="off"))
    with pytest.raises(ValueError, match="max_turns >= 7"):
        ConsultDecisionEnv(env=ArithmeticEnv(max_turns=3))
    env = ConsultDecisionEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="integer in 0..4"):
        env.step(7)


def test_missing_agents_are_refused_without_cost():
    env = ConsultDecisionEnv(agents={"reasoning": "reference"}, consult_cost=0.3)
    observation, _ = env.reset(seed=0)
    assert observation[FEATURE["verify_left"]] == 0.0 and observation[FEATURE["reasoning_left"]] == 1.0
    _, reward, _, _, info = env.step(Decision.VERIFY)
    assert info["outcome"] == "refused" and reward == 0.0


# -- Stable-Baselines3 trains on it unchanged ---------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [(PPO, {"n_steps": 64, "batch_size": 32, "n_epochs": 2}), (A2C, {}), (DQN, {"learning_starts": 50})],
)
def test_sb3_algorithms_train_a_few_hundred_steps(algorithm, kwargs):
    model = algorithm("MlpPolicy", ConsultDecisionEnv(), seed=0, device="cpu", **kwargs)
    model.learn(total_timesteps=256)
    action, _ = model.predict(ConsultDecisionEnv().reset(seed=0)[0], deterministic=True)
    assert int(action) in range(len(Decision))


def test_a_given_reasoning_envs_budgets_are_the_ones_that_count():
    """The decision env reads costs and budgets from the reasoning env: a consult that env would
    refuse is refused up front, at no cost and without using up the reasoning env's turns."""
    made = gym.make("aipo/Arithmetic-v0", level=3, max_turns=7, max_consults=6, max_consults_per_agent=0)
    env = ConsultDecisionEnv(env=made)
    observation, _ = env.reset(seed=0)
    assert observation[FEATURE["reasoning_left"]] == 0.0
    outcomes = [env.step(Decision.REASONING) for _ in range(7)]
    assert [info["outcome"] for *_, info in outcomes] == ["refused"] * 7
    assert all(reward == 0.0 and not terminated for _, reward, terminated, _, _ in outcomes)
    _, _, terminated, _, info = env.step(Decision.ANSWER)
    assert terminated and "correct" in info
    with pytest.raises(ValueError, match="set consult_cost and max_consults_per_agent on that reasoning env"):
        ConsultDecisionEnv(env=made, consult_cost=0.1)
    assert all(step_reward == 0.0 for _, step_reward, *_ in outcomes)
