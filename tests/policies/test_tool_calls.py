"""Consults as tool calls through a chat template (Qwen2.5 and Llama 3.1 formats, tiny tokenizers):
the tools are in the prompt, replies are the template's tool messages, and the ids trained on are the
ids sampled plus the template's rendering, equal to a forward pass over the whole episode."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import pytest
import torch
from tool_templates import tool_model, tool_tokenizer

import aipo_env  # noqa: F401  (registers the ids)
from algorithms.batch import AGENT, POLICY, PROMPT, collate
from algorithms.forward import token_logprobs
from algorithms.rollout import Guide, rollout
from policies import Action, HFPolicy
from policies.base import closed_turn
from policies.tiny import build_tokenizer
from policies.tool_calls import tool_protocol


class ToolCaller(HFPolicy):
    """The tiny model, made to call the Reasoning tool on its first turn (the call and its EOS with
    their true log-probs) and to sample every later turn; records each context and turn."""

    def __init__(self, model, tokenizer, query: str = "next step") -> None:
        super().__init__(model, tokenizer, chat_template=True, protocol="tools", max_new_tokens=12)
        self.query, self.calls = query, []

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        actions = super().generate(contexts, greedy=greedy)
        actions = [
            self._call(context) if self._first_turn(context) else action
            for context, action in zip(contexts, actions, strict=True)
        ]
        self.calls += [(list(context), action) for context, action in zip(contexts, actions, strict=True)]
        return actions

    def _first_turn(self, context: Sequence[int]) -> bool:
        eos = self.tokenizer.eos_token_id  # every prompt holds as many as this one; a turn adds one
        return list(context).count(eos) == self.encode_prompt("x").count(eos)

    def _call(self, context: Sequence[int]) -> Action:
        protocol = self.env_protocol
        call = protocol.consult("reasoning", self.query)[: -len(protocol.end_of_turn)]
        ids = [*self.encode_text(call), self.tokenizer.eos_token_id]
        sequence = torch.tensor([[*context, *ids]])
        with torch.no_grad():
            logprobs, _ = token_logprobs(self.model, sequence, torch.ones_like(sequence))
        # the text HFPolicy gives the env for these ids: the call, ended by the sampled EOS
        text = closed_turn(call, ids, self.eos_token_ids, self.end_of_turn)
        return Action(text, tuple(ids), tuple(logprobs[0, len(context) :].tolist()))


def envs(policy: HFPolicy, count: int) -> list[gym.Env]:
    return [
        gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, max_consults=1, protocol=policy.env_protocol)
        for _ in range(count)
    ]


def conversation(episode, protocol) -> list[dict]:
    """The episode up to its tool reply as chat messages: user, assistant tool call, tool."""
    prompt, call = episode.record.segments[0].text, protocol.parse(episode.record.segments[1].text)
    tool_call = {"type": "function", "function": {"name": call.agent, "arguments": {"query": call.query}}}
    wrapper = protocol.feedback_wrapper(call.agent)
    reply = episode.record.segments[2].text[len(wrapper[0]) : -len(wrapper[1])]
    return [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "", "tool_calls": [tool_call]},
        {"role": "tool", "name": call.agent, "content": reply},
    ]


@pytest.mark.parametrize("style", ["qwen", "llama"])
def test_a_sampled_tool_call_its_reply_and_later_turns_are_exact_token_ids(style: str) -> None:
    model, tokenizer = tool_model(style)
    policy = ToolCaller(model, tokenizer)
    episodes = rollout(policy, envs(policy, 4), [0, 1], group_size=2)
    protocol = policy.env_protocol
    for episode in episodes:
        assert episode.record.consults["reasoning"] == 1  # the call was answered, as a consult
        assert episode.record.segments[2].source == "agent"
        # the ids up to the next assistant turn are the template's own rendering of the conversation
        rendered = tokenizer.apply_chat_template(
            conversation(episode, protocol),
            tools=protocol.tools(),
            add_generation_prompt=True,
            tokenize=False,
        )
        expected = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert episode.token_ids[: len(expected)] == expected
        # the reply's tokens are labelled as the helper's, and nothing after them is
        agent_ids = [i for i, s in zip(episode.token_ids, episode.sources, strict=True) if s == AGENT]
        assert tokenizer.decode(agent_ids) == episode.record.segments[2].text
        assert POLICY in episode.sources[episode.sources.index(AGENT) :]
    # what the model sampled from and sampled is a prefix of what it is trained on
    for context, action in policy.calls:
        sampled = [*context, *action.token_ids]
        assert any(episode.token_ids[: len(sampled)] == sampled for episode in episodes)
    batch = collate(episodes, policy.pad_token_id)
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask)
    mask = batch.policy_mask
    assert float((logprobs[mask] - batch.behaviour_logprobs[mask]).abs().max()) <= 1e-4


def test_the_prompt_offers_the_agents_as_tools_and_turns_end_at_eos_only() -> None:
    model, tokenizer = tool_model("qwen")
    policy = HFPolicy(model, tokenizer, chat_template=True, protocol="tools")
    prompt = tokenizer.decode(policy.encode_prompt("What is 2 + 3?"))
    assert (
        '"name": "verify"' in prompt and '"name": "knowledge"' in prompt and '"name": "reasoning"' in prompt
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    assert policy.stop == ()
    env = envs(policy, 1)[0]
    observation, _ = env.reset(options={"index": 0})
    assert "call one of the tools verify, knowledge, reasoning" in observation


def test_a_guided_tool_call_is_context_and_its_reply_the_templates() -> None:
    model, tokenizer = tool_model("qwen")
    policy = HFPolicy(model, tokenizer, chat_template=True, protocol="tools", max_new_tokens=8)
    episodes = rollout(policy, envs(policy, 2), [0], group_size=2, guide=Guide(per_group=1))
    guided = episodes[0]
    assert guided.record.consults["reasoning"] == 1
    rendered = tokenizer.apply_chat_template(
        conversation(guided, policy.env_protocol),
        tools=policy.env_protocol.tools(),
        add_generation_prompt=True,
        tokenize=False,
    )
    expected = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert guided.token_ids[: len(expected)] == expected  # the written call ends its turn with <|im_end|>
    first_policy = guided.sources.index(POLICY)
    assert set(guided.sources[:first_policy]) == {PROMPT, AGENT}  # the written call is never learned


def test_a_template_without_tools_is_refused_with_what_to_do() -> None:
    model, tokenizer = tool_model("qwen")
    plain = build_tokenizer()
    plain.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    with pytest.raises(ValueError, match="does not render tools.*protocol='text'"):
        tool_protocol(plain)
    with pytest.raises(ValueError, match="needs a chat template"):
        tool_protocol(build_tokenizer())
    with pytest.raises(ValueError, match="set chat_template=True"):
        HFPolicy(model, tokenizer, protocol="tools")


def test_the_tool_message_is_what_the_template_adds_after_the_assistant_turn() -> None:
    for style in ("qwen", "llama"):
        tokenizer = tool_tokenizer(style)
        protocol = tool_protocol(tokenizer)
        reply = 'yes, "4" is right\nand {"x": 1}'
        call = {"type": "function", "function": {"name": "verify", "arguments": {"query": "2+2=4?"}}}
        messages = [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ]
        before = tokenizer.apply_chat_template(messages, tools=protocol.tools(), tokenize=False)
        before = before[: before.rfind(protocol.end_of_turn) + len(protocol.end_of_turn)]
        after = tokenizer.apply_chat_template(
            [*messages, {"role": "tool", "name": "verify", "content": reply}],
            tools=protocol.tools(),
            add_generation_prompt=True,
            tokenize=False,
        )
        assert before + protocol.feedback("verify", reply) == after
        # a written consult is the template's rendering of the call, end of turn included
        assert before.endswith(protocol.consult("verify", "2+2=4?"))


def test_the_trainer_gives_its_envs_the_policys_tool_protocol(tmp_path) -> None:
    from algorithms.config import ConfigError, TrainConfig
    from algorithms.trainer import Trainer

    config = TrainConfig.model_validate(
        {
            "steps": 1,
            "output_dir": str(tmp_path),
            "progress": False,
            "env": {"kwargs": {"level": 1, "max_turns": 2, "protocol": "tools"}},
            "rollout": {"problems_per_step": 1, "group_size": 2, "max_new_tokens": 8, "guided_per_group": 1},
        }
    )
    model, tokenizer = tool_model("qwen")
    policy = HFPolicy(model, tokenizer, chat_template=True, protocol="tools", max_new_tokens=8)
    trainer = Trainer(config, policy=policy)
    assert all(env.unwrapped.protocol is policy.env_protocol for env in trainer.envs)
    batch = trainer.collect()
    helper = batch.input_ids[0][batch.source[0] == AGENT].tolist()
    assert tokenizer.decode(helper).startswith("\n<|im_start|>user\n<tool_response>\n")
    with pytest.raises(ConfigError, match="protocol='tools'"):
        Trainer(config, policy=HFPolicy(model, tokenizer, chat_template=True))


# TRL ships the chat templates of the models it supports (trl/chat_templates/*.jinja): real Qwen2.5,
# Qwen3 and Llama 3.1 / 3.2 templates, used here on the tiny tokenizer with their special tokens.
TRL_TEMPLATES = {
    "qwen2_5": (["<|im_start|>", "<|im_end|>"], "<|im_end|>", "qwen"),
    "qwen3": (["<|im_start|>", "<|im_end|>", "<think>", "</think>"], "<|im_end|>", "qwen"),
    "llama3_1": (
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>"],
        "<|eot_id|>",
        "llama",
    ),
    "llama3_2": (
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>"],
        "<|eot_id|>",
        "llama",
    ),
}


@pytest.mark.parametrize("name", sorted(TRL_TEMPLATES))
def test_real_qwen_and_llama_templates_render_our_calls_and_replies(name: str) -> None:
    trl = pytest.importorskip("trl")
    from pathlib import Path

    specials, eos, style = TRL_TEMPLATES[name]
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.eos_token = eos
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()
    protocol = tool_protocol(tokenizer)
    assert (protocol.style, protocol.end_of_turn) == (style, eos)
    opening = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Q"}], tools=protocol.tools(), tokenize=False, add_generation_prompt=True
    )
    assert '"name": "verify"' in opening  # the agents are offered as tools
    reply = 'yes: "4"\nis right'
    call = {"type": "function", "function": {"name": "verify", "arguments": {"query": "is 2+2=4?"}}}
    turn = protocol.consult("verify", "is 2+2=4?")  # as the model writes it, end of turn included
    assert protocol.parse(turn).query == "is 2+2=4?"
    full = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "verify", "content": reply},
        ],
        tools=protocol.tools(),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert full.endswith(protocol.end_of_turn + protocol.feedback("verify", reply))
    if name != "qwen3":  # Qwen3 drops the empty <think> block of a turn that is not the last
        assert full == opening + turn + protocol.feedback("verify", reply)


def test_aipo_eval_plays_a_tool_trained_model_with_its_templates_tools(tmp_path) -> None:
    from aipo.commands.evaluate import build_policy, run_eval
    from algorithms.config import EvalConfig

    model, tokenizer = tool_model("qwen")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    config = EvalConfig.model_validate(
        {
            "model": {"name_or_path": str(tmp_path / "model"), "chat_template": True},
            "env": {"kwargs": {"level": 1, "protocol": "tools"}},
            "problems": 2,
            "samples": 1,
            "max_new_tokens": 8,
            "progress": False,
            "output_dir": str(tmp_path / "eval"),
        }
    )
    policy = build_policy(config)
    assert policy.protocol == "tools"
    prompt = policy.encode_prompt(
        gym.make("aipo/Arithmetic-v0", level=1, protocol=policy.env_protocol).reset(seed=0)[0]
    )
    assert "<tools>" in tokenizer.decode(prompt)  # the template offered the agents as tools
    result = run_eval(config)
    assert (tmp_path / "eval" / "eval.json").is_file() and result.settings["policy"] == "model"


def test_a_tool_call_cut_by_max_new_tokens_is_not_made() -> None:
    """A turn the model did not end (no EOS: max_new_tokens ran out right after the call) has no
    end-of-turn token before a tool message, so its call is scored as an unfinished answer."""
    model, tokenizer = tool_model("qwen")
    policy = HFPolicy(model, tokenizer, chat_template=True, protocol="tools")
    call = policy.env_protocol.consult("reasoning", "next step")[: -len(policy.end_of_turn)]
    cut = policy.encode_text(call)
    ended = [*cut, tokenizer.eos_token_id]
    parse = policy.env_protocol.parse
    assert parse(closed_turn(call, ended, policy.eos_token_ids, policy.end_of_turn)).kind.value == "consult"
    unfinished = parse(closed_turn(call, cut, policy.eos_token_ids, policy.end_of_turn))
    assert unfinished.kind.value == "final" and unfinished.issue == "unclosed_consult"
