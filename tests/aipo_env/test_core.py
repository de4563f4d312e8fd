"""The reasoning env's rules: rewards, budgets, consult modes, problem choice, the episode record."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.error import ResetNeeded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.agents import Agent, AgentReply
from aipo_env.core import ReasoningEnv
from aipo_env.tasks.arithmetic import ArithmeticTask

CONSULT_R = '<consult agent="reasoning">next?</consult>'
CONSULT_V = '<consult agent="verify">Is 2 + 2 = 4?</consult>'


def make_env(**kwargs) -> ReasoningEnv:
    return ReasoningEnv(ArithmeticTask(level=3, size=50), **kwargs)


def answer_of(env: ReasoningEnv) -> str:
    return f"\\boxed{{{env.problem.answer}}}"


class Exploding(Agent):
    name = "verify"

    def reply(self, request):
        raise ConnectionError("server down")


class Silent(Agent):
    name = "knowledge"

    def reply(self, request):
        return AgentReply("   ")


class Chatty(Agent):
    name = "reasoning"

    def reply(self, request):
        return AgentReply("blah " * 1000)


def test_correct_final_answer_terminates_with_reward_one():
    env = make_env()
    obs, info = env.reset(seed=1)
    assert info["problem"]["source"] == "arithmetic" and "answer" not in info["problem"]
    obs, reward, terminated, truncated, info = env.step(f"Easy: {answer_of(env)}")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["correct"] and info["episode"].correct and info["episode"].reward == 1.0


def test_consult_inserts_feedback_and_costs():
    env = make_env(consult_cost=0.05)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(CONSULT_R)
    assert not terminated and reward == pytest.approx(-0.05)
    assert obs.rstrip().endswith("</feedback>") and '<feedback agent="reasoning">Step 1:' in obs
    assert info["consults"]["reasoning"] == 1 and info["action"]["outcome"] == "answered"
    _, reward, terminated, _, info = env.step(answer_of(env))
    assert terminated and reward == 1.0
    assert info["episode"].reward == pytest.approx(0.95)


def test_observation_is_the_concatenation_of_segments():
    env = make_env()
    env.reset(seed=3)
    env.step(CONSULT_R)
    env.step('<consult agent="knowledge">how do I multiply?</consult>')
    obs, *_, info = env.step("I think \\boxed{1}")
    record = info["episode"]
    assert record.transcript == obs
    assert [s.source for s in record.segments] == ["prompt", "policy", "agent", "policy", "agent", "policy"]
    assert [s.agent for s in record.segments if s.source == "agent"] == ["reasoning", "knowledge"]
    assert record.texts("policy")[-1] == "I think \\boxed{1}"


def test_total_and_per_agent_budgets_refuse_without_crashing():
    env = make_env(max_consults=2, max_consults_per_agent={"verify": 1}, max_turns=10)
    env.reset(seed=0)
    assert env.step(CONSULT_V)[4]["action"]["outcome"] == "answered"
    obs, _, _, _, info = env.step(CONSULT_V)
    assert info["action"]["outcome"] == "refused" and "verify agent's budget" in obs
    assert env.step(CONSULT_R)[4]["action"]["outcome"] == "answered"
    obs, _, terminated, _, info = env.step(CONSULT_R)
    assert info["action"]["outcome"] == "refused" and "consult budget (2 per episode)" in obs
    assert not terminated and info["consults_left"] == 0 and info["unanswered_consults"] == 2


def test_last_turn_is_scored_as_final_even_if_it_consults():
    env = make_env(max_turns=2)
    env.reset(seed=0)
    env.step(CONSULT_R)
    _, reward, terminated, truncated, info = env.step(f"{answer_of(env)} {CONSULT_V}")
    assert terminated and not truncated and reward == 1.0
    assert info["action"]["forced_final"] and info["action"]["kind"] == "consult"


def test_off_mode_appends_consults_unanswered_and_counts_them():
    env = make_env(consult="off")
    obs, _ = env.reset(seed=0)
    assert "To consult a helper" not in obs
    obs, reward, terminated, _, info = env.step(CONSULT_R)
    assert obs.endswith(CONSULT_R) and "<feedback" not in obs
    assert (reward, terminated, info["action"]["outcome"]) == (0.0, False, "off")
    assert info["unanswered_consults"] == 1 and info["consults"]["reasoning"] == 0
    _, reward, terminated, _, info = env.step(f"so {answer_of(env)}")
    assert terminated and reward == 1.0 and info["episode"].unanswered_consults == 1


def test_invalid_consult_is_penalised_and_explained():
    env = make_env(invalid_action_penalty=0.25)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step('<consult agent="oracle">answer?</consult>')
    assert reward == -0.25 and not terminated
    assert info["action"] == {
        "kind": "invalid",
        "issue": "unknown_agent",
        "agent": "oracle",
        "outcome": "penalised",
    }
    assert "Invalid consult (unknown agent)" in obs


@pytest.mark.parametrize("agent", [Exploding(), Silent()])
def test_failing_agent_gives_a_note_and_the_episode_goes_on(agent):
    env = make_env(agents={agent.name: agent})
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(f'<consult agent="{agent.name}">help</consult>')
    assert not terminated and reward == 0.0
    assert info["action"]["outcome"] == "agent_error" and info["agent_failures"] == 1
    assert f"The {agent.name} agent is unavailable" in obs
    assert env.step(answer_of(env))[2]


def test_long_replies_are_trimmed_to_the_feedback_budget():
    env = make_env(agents={"reasoning": Chatty()}, max_feedback_chars=100)
    env.reset(seed=0)
    _, _, _, _, info = env.step(CONSULT_R)
    reply = [s for s in env._record.segments if s.source == "agent"][-1].text
    assert "[trimmed]" in reply and len(reply) < 100 + 60


def test_missing_agent_is_refused():
    env = make_env(agents={"verify": "reference"})
    env.reset(seed=0)
    obs, _, _, _, info = env.step(CONSULT_R)
    assert info["action"]["outcome"] == "refused" and "No reasoning agent" in obs


def test_reset_by_index_and_seed_is_reproducible():
    env = make_env()
    _, info = env.reset(options={"index": 7})
    assert info["problem"]["index"] == 7 and env.problem.id == env.task.problem(7).id
    first = env.reset(seed=11)[0]
    assert env.reset(seed=11)[0] == first
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"index": 50})
    with pytest.raises(ValueError, match="must be an integer"):
        env.reset(options={"index": "3"})


def test_step_after_the_end_raises_reset_needed():
    env = make_env()
    env.reset(seed=0)
    env.step("\\boxed{0}")
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step("again")
    with pytest.raises(ResetNeeded):
        make_env().step("never reset")


def test_reveal_answer_and_bad_arguments():
    env = make_env(reveal_answer=True)
    _, info = env.reset(seed=0)
    assert info["problem"]["answer"] == env.problem.answer
    with pytest.raises(ValueError, match="consult must be"):
        make_env(consult="sometimes")
    with pytest.raises(ValueError, match="agents="):
        make_env(agents="gpt")
    with pytest.raises(ValueError, match="role 'oracle'"):
        make_env(agents={"oracle": "reference"})


def test_megabyte_action_is_cut_and_scored():
    env = make_env()
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("9" * 2_000_000)
    assert terminated and reward == 0.0 and info["action"]["issue"] == "oversize"
    assert env.observation_space.contains(obs)


_PIECES = st.sampled_from(
    [
        '<consult agent="verify">',
        '<consult agent="reasoning">',
        "<consult agent='x'>",
        "</consult>",
        "\\boxed{",
        "}",
        "7",
        " ",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=12).map("".join), min_size=1, max_size=8
    )
)
def test_any_sequence_of_actions_never_raises(actions):
    env = make_env(max_turns=4)
    obs, _ = env.reset(seed=0)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert info["action"]["kind"] in {"consult", "final", "invalid"}
        if terminated:
            assert info["episode"].transcript == obs
            break


def test_registered_env_renders_ansi():
    env = gym.make("aipo/Arithmetic-v0", render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs


def test_consult_costs_are_per_agent_and_never_negative():
    import gymnasium as gym
    import pytest

    env = gym.make("aipo/Arithmetic-v0", level=2, agents="reference", consult_cost={"reasoning": 0.25})
    env.reset(seed=0)
    _, cheap, *_ = env.step('<consult agent="verify">Is 1 + 1 = 2?</consult>')
    _, dear, *_ = env.step('<consult agent="reasoning">next step?</consult>')
    assert cheap == 0.0 and dear == -0.25
    assert env.unwrapped.consults_used("reasoning") == 1 and env.unwrapped.consults_left("reasoning") == 2
    with pytest.raises(ValueError, match="must be >= 0"):
        gym.make("aipo/Arithmetic-v0", consult_cost=-0.1)
    with pytest.raises(ValueError, match="unknown agents"):
        gym.make("aipo/Arithmetic-v0", consult_cost={"oracle": 0.1})
