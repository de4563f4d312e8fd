"""SmolLM2's real BPE tokenizer and chat template through multi-turn consult episodes: the ids the
policy sampled are exactly the ids the learner trains on, at every segment boundary."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch

import aipo_env  # noqa: F401  (registers the ids)
from algorithms.batch import AGENT, POLICY, collate
from algorithms.forward import token_logprobs
from algorithms.rollout import Guide, rollout
from policies import Action, HFPolicy
from policies.base import turn_text
from policies.hf import _StopOnText

# ">." is one SmolLM2 token: the turn's last token holds the stop string and a character after it
MERGED_CONSULT = 'I will ask. <consult agent="reasoning">next step</consult>.'


class Recording(HFPolicy):
    """SmolLM2 sampling for real, recording every context and turn; ``forced`` opening turns are
    written (the consult whose last BPE token runs past ``</consult>``) with their true log-probs."""

    def __init__(self, base: HFPolicy, forced: str | None = None) -> None:
        super().__init__(base.model, base.tokenizer, chat_template=True, max_new_tokens=base.max_new_tokens)
        self.forced, self.calls = forced, []

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        actions = super().generate(contexts, greedy=greedy)
        if self.forced is not None:
            actions = [
                self._forced(c) if "<feedback" not in self._text(c) else a
                for c, a in zip(contexts, actions, strict=True)
            ]
        self.calls += [(list(context), action) for context, action in zip(contexts, actions, strict=True)]
        return actions

    def _text(self, context: Sequence[int]) -> str:
        return self.tokenizer.decode(list(context))

    def _forced(self, context: Sequence[int]) -> Action:
        ids = self.encode_text(self.forced)
        sequence = torch.tensor([[*context, *ids]])
        with torch.no_grad():
            logprobs, _ = token_logprobs(self.model, sequence, torch.ones_like(sequence))
        text = turn_text(self.tokenizer.decode(ids, skip_special_tokens=True), self.stop)
        return Action(text, tuple(ids), tuple(logprobs[0, len(context) :].tolist()))


def envs(count: int) -> list[gym.Env]:
    return [gym.make("aipo/Arithmetic-v0", level=1, max_turns=3, max_consults=1) for _ in range(count)]


def check_exact(policy: Recording, episodes: list) -> None:
    """Every context the policy sampled from, plus what it sampled, is a prefix of a trained episode,
    and the behaviour log-probs are those of a forward pass over the trained ids (float32)."""
    trained = [episode.token_ids for episode in episodes]
    for context, action in policy.calls:
        sampled = [*context, *action.token_ids]
        assert any(ids[: len(sampled)] == sampled for ids in trained)
    decode = policy.tokenizer.decode
    for episode in episodes:
        ids, sources = torch.tensor(episode.token_ids), torch.tensor(episode.sources)
        assert decode(ids[sources == AGENT].tolist()) == "".join(episode.record.texts("agent"))
    batch = collate(episodes, policy.pad_token_id)
    with torch.no_grad():
        logprobs, _ = token_logprobs(policy.model, batch.input_ids, batch.attention_mask)
    mask = batch.policy_mask
    assert int(mask.sum()) > 0
    assert float((logprobs[mask] - batch.behaviour_logprobs[mask]).abs().max()) <= 1e-3


def test_sampled_turns_helper_replies_and_chat_template_stay_exact(smollm2: HFPolicy) -> None:
    policy = Recording(smollm2)
    episodes = rollout(policy, envs(8), [0, 1], group_size=4, guide=Guide(per_group=2))
    check_exact(policy, episodes)
    # the prompt is SmolLM2's chat template, and the consulted groups hold helper tokens mid-episode
    first = policy.tokenizer.decode(episodes[0].token_ids)
    assert first.startswith("<|im_start|>system") and "<|im_start|>assistant\n" in first
    assert sum(episode.record.consults["reasoning"] for episode in episodes) == 4
    assert all(POLICY in episode.sources[episode.sources.index(AGENT) :] for episode in episodes[:2])


def test_a_consult_whose_last_token_runs_past_the_stop_string_is_still_a_consult(smollm2: HFPolicy) -> None:
    tokenizer = smollm2.tokenizer
    ids = tokenizer(MERGED_CONSULT, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids[-1:]) == ">."  # the premise: BPE merged the tag's end with the "."
    stopper = _StopOnText(tokenizer, ["</consult>"], 0, smollm2._stop_triggers())
    assert stopper.rows_stopped(torch.tensor([ids])).tolist() == [True]
    assert not stopper.rows_stopped(torch.tensor([ids[:-1]])).any()
    policy = Recording(smollm2, forced=MERGED_CONSULT)
    episodes = rollout(policy, envs(4), [2], group_size=4)
    check_exact(policy, episodes)
    for episode in episodes:
        assert episode.record.consults["reasoning"] == 1  # answered, not scored as a final answer
        merged = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(">."))[0]
        assert merged in episode.token_ids  # the sampled token is trained on, "." included
