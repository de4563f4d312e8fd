"""The rule task: every problem doubles at least once, its solution writes doubling as v + v, splits are disjoint."""

import gymnasium as gym
import pytest

import aipo_env  # noqa: F401
from aipo_env.tasks.arithmetic_rule import ArithmeticRuleTask, in_test_split


def questions(task: ArithmeticRuleTask) -> set[str]:
    return {task.problem(index).question for index in range(len(task))}


@pytest.mark.parametrize(
    ("operations", "test_share", "max_start"), [(1, 1 / 3, 9), (2, 1 / 3, 9), (3, 1 / 3, 9), (2, 0.5, 18)]
)
def test_train_and_test_splits_ask_disjoint_questions_and_cover_every_chain(
    operations, test_share, max_start
):
    train, test = (
        ArithmeticRuleTask(operations, split, test_share, max_start) for split in ("train", "test")
    )
    asked_train, asked_test = questions(train), questions(test)
    assert not asked_train & asked_test
    assert len(asked_train) == len(train) and len(asked_test) == len(test)
    assert len(train) + len(test) == max_start * (19**operations - 18**operations)
    assert all(in_test_split(text, test_share) for text in asked_test)


def test_the_demo_split_holds_out_at_least_300_problems():
    train, test = (ArithmeticRuleTask(2, split, test_share=0.5, max_start=18) for split in ("train", "test"))
    assert len(test) >= 300 and len(train) >= 300
    assert {test.problem(i).metadata["start"] for i in range(len(test))} == set(range(1, 19))


def test_more_start_values_or_a_larger_test_share_move_no_question_between_splits():
    for split in ("train", "test"):
        assert questions(ArithmeticRuleTask(2, split)) <= questions(
            ArithmeticRuleTask(2, split, max_start=18)
        )
    assert questions(ArithmeticRuleTask(2, "test")) <= questions(ArithmeticRuleTask(2, "test", 0.5))
    assert questions(ArithmeticRuleTask(2, "train", 0.5)) <= questions(ArithmeticRuleTask(2, "train"))


def test_a_problem_doubles_by_adding_the_value_to_itself():
    task = ArithmeticRuleTask(2, "train")
    problem = next(
        task.problem(i)
        for i in range(len(task))
        if task.problem(i).question.startswith("Start with 7. Double it, then add")
    )
    addend = int(problem.question.split("add ")[1].split(".")[0])
    assert problem.steps == ("7 + 7 = 14", f"14 + {addend} = {14 + addend}")
    assert problem.answer == str(14 + addend)
    assert task.score(problem, f"\\boxed{{{14 + addend}}}").correct
    assert not task.score(problem, "\\boxed{14}").correct


def test_the_reasoning_agent_reveals_the_rule_step_by_step():
    env = gym.make("aipo/ArithmeticRule-v0", split="test", instructions=False)
    env.reset(options={"index": 0})
    problem = env.unwrapped.problem
    observation, *_ = env.step('<consult agent="reasoning">next step</consult>')
    assert f"Step 1: {problem.steps[0]}" in observation
    _, reward, terminated, _, _ = env.step(f"\\boxed{{{problem.answer}}}")
    assert terminated and reward > 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="operations"):
        ArithmeticRuleTask(4)
    with pytest.raises(ValueError, match="split"):
        ArithmeticRuleTask(2, "dev")
    with pytest.raises(ValueError, match="test_share"):
        ArithmeticRuleTask(2, test_share=1.0)
    with pytest.raises(ValueError, match="max_start"):
        ArithmeticRuleTask(2, max_start=0)
