"""examples/real_rule.yaml, issue 27's real-model experiment: what it promises before anything runs."""

from pathlib import Path

import gymnasium as gym
import pytest

from aipo.demo.config import EXAMPLES, ArmConfig, arm_config, eval_env, load_demo_config, rl_arms


def questions(env_id: str, kwargs: dict) -> set[str]:
    task = gym.make(env_id, **kwargs).unwrapped.task
    return {task.problem(index).question for index in range(len(task))}


def test_three_seeds_of_every_arm_from_smollm2_on_the_made_up_verb(tmp_path: Path) -> None:
    demo = load_demo_config(EXAMPLES / "real_rule.yaml")
    assert len(demo.seeds) >= 3 and demo.warmup.source == "shared"
    assert demo.model.name_or_path == "smollm2-135m-instruct"
    assert set(demo.arms) == {"aipo", "grpo_alone", "aipo_own_voice", "trajectory", "sft"}
    held_out = eval_env(demo)
    assert held_out["kwargs"]["verb"] == "blick" and held_out["kwargs"]["split"] == "test"
    test = questions(held_out["id"], held_out["kwargs"])
    for arm in rl_arms(demo):
        train = arm_config(demo, arm, 0, tmp_path)
        assert train.model.lora is not None and train.model.train_layers == 4, arm
        assert train.env.kwargs["verb"] == "blick" and train.env.kwargs["split"] == "train", arm
        assert not test & questions(train.env.id, train.env.kwargs), arm


def test_the_arms_differ_only_in_what_they_test(tmp_path: Path) -> None:
    demo = load_demo_config(EXAMPLES / "real_rule.yaml")
    configs = {arm: arm_config(demo, arm, 0, tmp_path) for arm in rl_arms(demo)}
    budgets = {(c.steps, c.rollout.problems_per_step, c.rollout.group_size) for c in configs.values()}
    assert len(budgets) == 1  # the same episodes per arm
    assert configs["aipo"].rollout.guided_per_group > 0 and configs["aipo"].loss.agent_mode == "aipo"
    assert configs["aipo_own_voice"].loss.agent_mode == "own_voice"
    alone, trajectory = configs["grpo_alone"], configs["trajectory"]
    assert alone.env.kwargs["consult"] == "off" and alone.rollout.guided_per_group == 0
    assert alone.loss.agent_mode == "mask"
    assert trajectory.env.kwargs["consult"] == "off" and trajectory.rollout.reference_per_group == 1
    assert trajectory.loss.agent_mode == "luffy"


def test_its_control_trains_as_many_solutions_as_an_rl_arm_plays_episodes(tmp_path: Path) -> None:
    demo = load_demo_config(EXAMPLES / "real_rule.yaml")
    control, aipo = demo.arms["sft"], arm_config(demo, "aipo", 0, tmp_path)
    episodes = aipo.steps * aipo.rollout.problems_per_step * aipo.rollout.group_size
    assert control.steps * control.batch_size == episodes


def test_fixed_control_steps_are_for_sft_arms_only() -> None:
    with pytest.raises(ValueError, match="`steps` is for sft arms"):
        ArmConfig(config=EXAMPLES / "real_rule_smollm2.yaml", steps=3)
