"""Procedural tasks: reasoning-gym's own scorer, answer extraction, levels, settings, the env."""

from __future__ import annotations

import json
import statistics

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.tasks.procedural import ProceduralTask, available_tasks, extract_answer, json_ready, max_level

TASKS = [
    "basic_arithmetic",
    "chain_sum",
    "leg_counting",
    "spell_backward",
    "word_sorting",
    "gcd",
    "letter_counting",
]


@pytest.mark.parametrize("name", TASKS)
def test_reference_answer_scores_one_and_a_wrong_one_less(name):
    task = ProceduralTask(name, size=8, seed=11)
    for index in range(3):
        problem = task.problem(index)
        assert problem.answer, "these tasks have a single reference answer"
        right = task.score(problem, f"Let me work it out.\n<answer>{problem.answer}</answer>")
        assert (right.reward, right.correct, right.extracted) == (1.0, True, problem.answer)
        wrong = task.score(problem, "<answer>certainly not this</answer>")
        assert wrong.reward < 1.0 and not wrong.correct
        json.dumps(dict(problem.metadata), allow_nan=False)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("First <answer>41</answer>, then I fixed it: <answer> 42 </answer>", "42"),
        ("<ANSWER>\n42\n</ANSWER>", "42"),
        ("So the result is \\boxed{42}.", "42"),
        ("\\boxed{1} is wrong; \\boxed{42}", "42"),
        ("<answer>42</answer> and later \\boxed{7}", "42"),
        ("Reasoning...\n\n42\n\n", "42"),
        ("Reasoning...\nAnswer: 42", "42"),
        ("Final answer = 42", "42"),
        ("", None),
        ("   \n  ", None),
    ],
)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_reference_answer_in_a_box_or_on_the_last_line_also_scores():
    task = ProceduralTask("basic_arithmetic", size=4, seed=0)
    problem = task.problem(1)
    assert task.score(problem, f"\\boxed{{{problem.answer}}}").correct
    assert task.score(problem, f"Step by step...\n{problem.answer}").correct


def generated(task: ProceduralTask, key: str, count: int = 40) -> list[int]:
    """What the generator recorded about each problem (number of terms, digits, ...)."""
    return [task.problem(i).metadata["reasoning_gym"][key] for i in range(count)]


def test_level_changes_the_difficulty():
    easiest = ProceduralTask("chain_sum", size=40, seed=0, level=0)
    hardest = ProceduralTask("chain_sum", size=40, seed=0, level=max_level("chain_sum"))
    assert set(generated(easiest, "num_terms")) == {2} and set(generated(easiest, "num_digits")) == {1}
    assert statistics.mean(generated(hardest, "num_terms")) > 4
    assert statistics.mean(generated(hardest, "num_digits")) > 3
    biggest = max(abs(int(hardest.problem(i).answer)) for i in range(40))
    assert biggest > 100 * max(abs(int(easiest.problem(i).answer)) for i in range(40))
    assert easiest.problem(0).difficulty == 0


def test_level_is_monotone_in_word_length():
    short = ProceduralTask("spell_backward", size=30, seed=0, level=0)
    long = ProceduralTask("spell_backward", size=30, seed=0, level=max_level("spell_backward"))
    assert statistics.mean(map(len, (long.problem(i).answer for i in range(30)))) > statistics.mean(
        map(len, (short.problem(i).answer for i in range(30)))
    )


def test_level_is_applied_before_config():
    task = ProceduralTask("basic_arithmetic", size=30, seed=0, level=4, config={"max_terms": 3})
    assert task.settings["max_terms"] == 3
    assert max(task.problem(i).metadata["reasoning_gym"]["num_terms"] for i in range(30)) <= 3


def test_problems_are_reproducible_with_stable_ids():
    first, again = ProceduralTask("chain_sum", size=5, seed=3), ProceduralTask("chain_sum", size=5, seed=3)
    other = ProceduralTask("chain_sum", size=5, seed=4)
    assert [first.problem(i) for i in range(5)] == [again.problem(i) for i in range(5)]
    assert [first.problem(i).question for i in range(5)] != [other.problem(i).question for i in range(5)]
    assert first.problem(4).id == "chain_sum-3-4"
    with pytest.raises(IndexError):
        first.problem(5)


def test_unknown_task_suggests_close_names_and_how_to_list_them():
    with pytest.raises(
        ValueError, match=r"unknown reasoning-gym task 'chain_summ'.*chain_sum.*available_tasks"
    ):
        ProceduralTask("chain_summ")
    assert "chain_sum" in available_tasks()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": {"max_term": 3}}, r"config key 'max_term'.*did you mean max_terms"),
        ({"config": {"seed": 1}}, r"config key 'seed': pass seed="),
        ({"config": {"min_terms": 5, "max_terms": 2}}, r"rejected the settings"),
        ({"level": 99}, r"level for 'chain_sum' must be an integer from 0 \(easiest\) to 10"),
        ({"level": -1}, r"from 0 \(easiest\)"),
        ({"size": 0}, r"size must be at least 1"),
    ],
)
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProceduralTask("chain_sum", **kwargs)


def test_level_on_a_task_without_curriculum_is_explained():
    without = next(name for name in available_tasks() if max_level(name) is None)
    with pytest.raises(ValueError, match="has no curriculum"):
        ProceduralTask(without, level=1)


def test_scorer_errors_score_zero_with_the_reason(monkeypatch):
    task = ProceduralTask("chain_sum", size=2, seed=0)

    def broken(answer, entry):
        raise KeyError("metadata")

    monkeypatch.setattr(task.dataset, "score_answer", broken)
    score = task.score(task.problem(0), "<answer>1</answer>")
    assert score.reward == 0.0 and "KeyError" in score.details["scorer_error"]


def test_json_ready_turns_generator_metadata_into_plain_json():
    value = {"range": (1, 4), 3: {"a", "b"}, "nan": float("nan"), "count": np.int64(5), "obj": object}
    ready = json_ready(value)
    assert ready["range"] == [1, 4] and ready["3"] == ["a", "b"] and ready["count"] == 5
    json.dumps(ready, allow_nan=False)


def test_check_env_with_defaults():
    env = gym.make("aipo/Procedural-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_an_episode_through_the_env_with_a_verify_consult():
    env = gym.make("aipo/Procedural-v0", task="leg_counting", level=1, size=20, reveal_answer=True)
    obs, info = env.reset(options={"index": 3})
    answer = info["problem"]["answer"]
    assert (
        "<answer>" in obs
        and info["problem"]["id"] == "leg_counting-0-3"
        and info["problem"]["difficulty"] == 1
    )
    obs, reward, terminated, _, _ = env.step(
        f'<consult agent="verify">Is the answer <answer>{answer}</answer>?</consult>'
    )
    assert not terminated and f"Correct: {answer} is the right answer." in obs
    obs, reward, terminated, _, info = env.step(f"<answer>{answer}</answer>")
    assert terminated and reward == 1.0 and info["correct"]
    env.close()
