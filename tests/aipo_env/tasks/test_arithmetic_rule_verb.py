"""The rule task with a made-up verb: no question says what it means, the Knowledge agent does."""

import gymnasium as gym
import pytest

import aipo_env  # noqa: F401
from aipo_env.tasks.arithmetic_rule import ArithmeticRuleTask


def questions(task: ArithmeticRuleTask) -> list[str]:
    return [task.problem(index).question for index in range(len(task))]


def test_the_splits_of_a_made_up_verb_are_disjoint_and_hold_out_over_300_problems():
    train, test = (ArithmeticRuleTask(2, split, 0.5, 18, verb="blick") for split in ("train", "test"))
    assert not set(questions(train)) & set(questions(test))
    assert len(train) + len(test) == 18 * (19**2 - 18**2) and len(test) >= 300


def test_no_question_says_what_the_verb_means_and_the_steps_still_double():
    for split in ("train", "test"):
        task = ArithmeticRuleTask(2, split, 0.5, 18, verb="blick")
        for text in questions(task):
            assert "blick it" in text.lower()
            assert not any(word in text.lower() for word in ("double", "itself", "twice", "times"))
    problem = next(
        p for p in map(task.problem, range(len(task))) if p.question.startswith("Start with 7. Blick")
    )
    assert problem.steps[0] == "7 + 7 = 14"


def test_the_knowledge_agent_defines_the_verb_and_only_a_made_up_one():
    env = gym.make("aipo/ArithmeticRule-v0", verb="blick", split="test", instructions=False)
    env.reset(options={"index": 0})
    observation, *_ = env.step('<consult agent="knowledge">What does it mean to blick a number?</consult>')
    assert "To blick a number: add the number to itself" in observation
    assert ArithmeticRuleTask(2).knowledge() == ()


def test_the_default_verb_asks_the_questions_it_always_asked():
    assert questions(ArithmeticRuleTask(2, "test")) == questions(ArithmeticRuleTask(2, "test", verb="double"))
    assert questions(ArithmeticRuleTask(1, "train"))[0] == "Start with 1. Double it. What number do you get?"


@pytest.mark.parametrize("verb", ["", "Blick", "blick it", 7])
def test_a_verb_that_is_not_one_lowercase_word_is_refused(verb):
    with pytest.raises(ValueError, match="verb must be one lowercase word"):
        ArithmeticRuleTask(2, verb=verb)
