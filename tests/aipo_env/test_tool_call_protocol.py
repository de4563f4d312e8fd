"""Consults as tool calls: parsing the Qwen and Llama formats, and the env's rules under the tool protocol
(the same rewards, penalties and notes as text consults, replies as tool messages)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.core import ReasoningEnv
from aipo_env.protocol import ActionKind
from aipo_env.tasks.arithmetic import ArithmeticTask
from aipo_env.tool_calls import ToolCallProtocol, tool_specs

QWEN = ToolCallProtocol()
LLAMA = ToolCallProtocol(style="llama", end_of_turn="<|eot_id|>")


def qwen_call(name: str, arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.mark.parametrize(
    ("action", "kind", "agent", "query", "issue"),
    [
        (
            "Let me check. " + qwen_call("verify", {"query": "Is 2+2=4?"}),
            "consult",
            "verify",
            "Is 2+2=4?",
            None,
        ),
        (
            '<tool_call>{"name": "Reasoning", "arguments": "{\\"query\\": \\" next \\"}"}</tool_call>\n',
            "consult",
            "reasoning",
            "next",
            None,
        ),
        ('So {"name": "knowledge", "parameters": {"query": "prime"}}', "consult", "knowledge", "prime", None),
        ('<|python_tag|>{"name": "verify", "arguments": {"query": "x"}}', "consult", "verify", "x", None),
        (qwen_call("verify", {"query": "a"}) + " so the answer is 4", "final", None, "", None),
        ('<tool_call>\n{"name": "verify", ', "final", None, "", "unclosed_consult"),
        ('ok {"name": "reasoning", "parameters": {"query": "ne', "final", None, "", "unclosed_consult"),
        ('{"name": "x"} is a JSON object', "final", None, "", None),
        ("the answer is \\boxed{4}", "final", None, "", None),
        ("", "final", None, "", "empty"),
        ("<tool_call>{name: verify}</tool_call>", "invalid", None, "", "malformed_tool_call"),
        (
            '<tool_call>{"name": "verify", "arguments": [1]}</tool_call>',
            "invalid",
            "verify",
            "",
            "malformed_tool_call",
        ),
        ('ok {"name": "reasoning", parameters}', "invalid", None, "", "malformed_tool_call"),
        (qwen_call("oracle", {"query": "answer?"}), "invalid", "oracle", "answer?", "unknown_agent"),
        (qwen_call("verify", {"query": "  "}), "invalid", "verify", "  ", "empty_query"),
        (qwen_call("verify", {"question": "a"}), "invalid", "verify", "", "empty_query"),
        (
            qwen_call("verify", {"query": "a"}) + "\n" + qwen_call("knowledge", {"query": "b"}),
            "invalid",
            "verify",
            "a",
            "several_tool_calls",
        ),
    ],
)
def test_tool_calls_are_parsed_as_consults_finals_or_invalid(action, kind, agent, query, issue):
    parsed = QWEN.parse(action)
    assert (parsed.kind, parsed.agent, parsed.query, parsed.issue) == (ActionKind(kind), agent, query, issue)


def test_written_consults_parse_back_and_strip_to_the_text_before_them():
    for protocol in (QWEN, LLAMA):
        consult = protocol.consult("verify", 'is "4" right?')
        parsed = protocol.parse("I think 4. " + consult)
        assert (parsed.kind, parsed.agent, parsed.query) == (ActionKind.CONSULT, "verify", 'is "4" right?')
        assert protocol.strip_consult("I think \\boxed{4}. " + consult) == "I think \\boxed{4}. "
    assert LLAMA.consult("verify", "q").endswith("}<|eot_id|>")


def test_tool_specs_are_json_schema_functions_with_one_query_argument():
    specs = tool_specs()
    assert [spec["function"]["name"] for spec in specs] == ["verify", "knowledge", "reasoning"]
    assert all(spec["function"]["parameters"]["required"] == ["query"] for spec in specs)


def make_env(**kwargs) -> ReasoningEnv:
    return ReasoningEnv(ArithmeticTask(level=3, size=50), protocol=QWEN, **kwargs)


def test_an_answered_tool_call_is_a_consult_with_its_reply_as_a_tool_message():
    env = make_env(consult_cost=0.05)
    obs, _ = env.reset(seed=0)
    assert "call one of the tools verify, knowledge, reasoning" in obs
    obs, reward, terminated, _, info = env.step(qwen_call("reasoning", {"query": "next step?"}))
    assert not terminated and reward == pytest.approx(-0.05)
    assert info["action"] == {"kind": "consult", "issue": None, "agent": "reasoning", "outcome": "answered"}
    segment = env.unwrapped._record.segments[-1]
    assert segment.source == "agent" and segment.text.startswith("\n<tool_response>\n")
    *_, info = env.step(f"\\boxed{{{env.problem.answer}}}")
    assert info["correct"] and info["episode"].reward == pytest.approx(0.95)


def test_a_malformed_tool_call_is_penalised_and_explained_in_a_tool_message():
    env = make_env(invalid_action_penalty=0.25)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("<tool_call>{not json}</tool_call>")
    assert reward == -0.25 and not terminated
    assert info["action"] == {
        "kind": "invalid",
        "issue": "malformed_tool_call",
        "agent": None,
        "outcome": "penalised",
    }
    assert obs.endswith(
        "Invalid consult (malformed tool call): To consult a helper, call one of the tools "
        "verify, knowledge, reasoning with your question.\n</tool_response>\n"
    )


def test_a_tool_call_on_the_last_turn_is_scored_without_it():
    env = make_env(max_turns=1)
    env.reset(seed=0)
    *_, terminated, _, info = env.step(
        f"\\boxed{{{env.problem.answer}}} " + qwen_call("verify", {"query": "ok?"})
    )
    assert terminated and info["correct"] and info["action"]["forced_final"]


def test_registered_envs_take_the_tool_protocol_by_name_and_pass_check_env():
    env = gym.make("aipo/Arithmetic-v0", protocol="tools")
    assert isinstance(env.unwrapped.protocol, ToolCallProtocol)
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="protocol must be 'text', 'tools'"):
        gym.make("aipo/Arithmetic-v0", protocol="json")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        "<tool_call>",
                        "</tool_call>",
                        '{"name": "verify"',
                        '"arguments": {"query": "a"}}',
                        '"parameters":',
                        "}",
                        "{",
                        "<|python_tag|>",
                        '"',
                        " ",
                    ]
                ),
                st.text(max_size=6),
            ),
            max_size=12,
        ).map("".join),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_actions_never_raises(actions):
    env = make_env(max_turns=4)
    obs, _ = env.reset(seed=0)
    for action in actions:
        obs, _, terminated, _, info = env.step(action)
        assert env.observation_space.contains(obs)
        if terminated:
            assert info["episode"].transcript == obs
            break
