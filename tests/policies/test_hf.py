from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import aipo_env  # noqa: F401  (registers the ids)
from policies import HFPolicy
from policies.base import turn_text
from policies.hf import _StopOnText

PRINTABLE = tuple(chr(code) for code in range(33, 127))


@pytest.fixture(scope="module")
def policy() -> HFPolicy:
    return HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=24, temperature=0.8)


def forward_logprobs(policy: HFPolicy, context: list[int], generated: tuple[int, ...]) -> torch.Tensor:
    ids = torch.tensor([context + list(generated)])
    with torch.no_grad():
        logits = policy.model(ids).logits[0, :-1] / policy.temperature
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return logprobs[len(context) - 1 :]


def test_behaviour_logprobs_match_a_forward_pass(policy: HFPolicy) -> None:
    torch.manual_seed(0)
    contexts = [policy.encode_prompt("Start with 2. Add 7."), policy.encode_prompt("Hi")]
    actions = policy.generate(contexts)
    for context, action in zip(contexts, actions, strict=True):
        assert action.token_ids is not None and action.logprobs is not None
        assert len(action.token_ids) == len(action.logprobs) > 0
        assert policy.tokenizer.decode(list(action.token_ids), skip_special_tokens=True) == action.text
        expected = forward_logprobs(policy, context, action.token_ids)
        assert torch.allclose(torch.tensor(action.logprobs), expected, atol=1e-4)


def test_logprobs_match_with_shared_prompts_padding_and_early_stops() -> None:
    # A group of identical prompts (prefilled once), a shorter prompt (left padding), and stop
    # strings that end some turns early (those rows leave the batch).
    policy = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=16, stop=tuple("abcdefghijklm"))
    group = policy.encode_prompt("Start with 2. Add 7.")
    contexts = [group, group, group, policy.encode_prompt("Hi")]
    torch.manual_seed(3)
    actions = policy.generate(contexts)
    assert any(len(action.token_ids or ()) < 16 for action in actions)
    for context, action in zip(contexts, actions, strict=True):
        assert action.token_ids is not None and action.logprobs is not None
        expected = forward_logprobs(policy, context, action.token_ids)
        assert torch.allclose(torch.tensor(action.logprobs), expected, atol=1e-4)


def test_a_turn_ends_right_after_a_stop_string() -> None:
    # Every printable character is a stop string, so each turn ends at the first one.
    policy = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=64, stop=PRINTABLE)
    torch.manual_seed(1)
    actions = policy.generate([policy.encode_prompt("x")] * 8)
    stopped = [a for a in actions if any(ch in a.text for ch in PRINTABLE)]
    assert stopped, "with 94 of 259 tokens printable, some turn must hit a stop string"
    for action in stopped:
        assert action.text[-1] in PRINTABLE
        assert not any(ch in action.text[:-1] for ch in PRINTABLE)


def test_stop_strings_in_the_prompt_do_not_stop_generation(policy: HFPolicy) -> None:
    tokenizer = policy.tokenizer
    prompt = tokenizer("ends with </consult>")["input_ids"]
    stopper = _StopOnText(tokenizer, ("</consult>",), len(prompt))
    ids = torch.tensor([prompt + tokenizer("a", add_special_tokens=False)["input_ids"]])
    assert not stopper(ids, torch.zeros(1)).any()
    tail = tokenizer("x</consult>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + tail])
    assert stopper(ids, torch.zeros(1)).all() and stopper.stopped_at == {0: len(tail)}


def test_the_env_gets_the_turn_up_to_the_stop_string_that_ended_it() -> None:
    # a BPE token can hold the stop string and what follows (SmolLM2's ">."): the ids keep it all,
    # the text sent to the env ends at the stop string, so the consult still ends the turn
    assert turn_text('Hm. <consult agent="verify">1+1=2?</consult>.', ["</consult>"]) == (
        'Hm. <consult agent="verify">1+1=2?</consult>'
    )
    assert turn_text("a</b>c</consult>d", ["</consult>", "</b>"]) == "a</b>"
    assert turn_text("no stop here", ["</consult>"]) == "no stop here"


def test_greedy_generation_is_deterministic(policy: HFPolicy) -> None:
    context = [policy.encode_prompt("Start with 4.")]
    assert policy.generate(context, greedy=True) == policy.generate(context, greedy=True)


def test_batched_and_single_generation_agree_greedily(policy: HFPolicy) -> None:
    contexts = [policy.encode_prompt("Start with 4. Add 1."), policy.encode_prompt("Hi")]
    batched = policy.generate(contexts, greedy=True)
    single = [policy.generate([context], greedy=True)[0] for context in contexts]
    assert [a.token_ids for a in batched] == [a.token_ids for a in single]


def test_act_plays_a_multi_turn_episode(policy: HFPolicy) -> None:
    env = gym.make("aipo/Arithmetic-v0", level=1, max_turns=2)
    observation, _ = env.reset(seed=0)
    for _ in range(2):
        (action,) = policy.act([observation])
        observation, _, terminated, _, info = env.step(action.text)
        if terminated:
            break
    assert terminated and isinstance(info["correct"], bool)


def test_clear_errors(policy: HFPolicy) -> None:
    with pytest.raises(ValueError, match="no chat template"):
        HFPolicy(policy.model, policy.tokenizer, chat_template=True)
    with pytest.raises(ValueError, match="temperature"):
        HFPolicy(policy.model, policy.tokenizer, temperature=0)
    room = policy.model.config.max_position_embeddings
    with pytest.raises(ValueError, match="no room"):
        policy.generate([[1] * room])


def test_chat_template_wraps_the_prompt_only() -> None:
    plain = HFPolicy.from_pretrained("tiny", device="cpu")
    plain.tokenizer.chat_template = (
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    chat = HFPolicy(plain.model, plain.tokenizer, chat_template=True)
    assert chat.tokenizer.decode(chat.encode_prompt("2+2?")) == "[user]2+2?[assistant]"
    assert chat.tokenizer.decode(chat.encode_text("feedback")) == "feedback"
