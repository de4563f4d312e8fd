"""What every policy provides: one action per observation, for a batch of episodes at once.

A policy reads observations (the transcript of each episode so far, see :mod:`aipo_env`) and
returns one :class:`Action` per observation: the text of its next turn. Trainable policies also
return the token ids they sampled and the behaviour log-probability of each of those tokens, so
a learner can train on exactly what was generated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Action:
    """One turn written by a policy.

    Attributes:
        text: the turn as it is passed to ``env.step``.
        token_ids: the generated token ids, special tokens (EOS) included; ``None`` for policies
            that do not work on tokens.
        logprobs: ``log pi(token | context)`` of each generated token under the distribution
            it was sampled from (same length as ``token_ids``); ``None`` when unknown.
    """

    text: str
    token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.token_ids is None) != (self.logprobs is None):
            raise ValueError("token_ids and logprobs must both be given or both be None")
        if self.token_ids is not None and len(self.token_ids) != len(self.logprobs or ()):
            raise ValueError(
                f"token_ids has {len(self.token_ids)} entries but logprobs has {len(self.logprobs or ())}"
            )


def turn_text(text: str, stops: Sequence[str]) -> str:
    """The text a turn sends to the env: ``text`` cut right after the first stop string in it.

    A BPE token can hold a stop string and what follows it (SmolLM2 has ``">."``, so
    ``</consult>.`` ends in one token). Generation stops at that token and keeps its id, so the
    learner trains on what was sampled; the env gets the turn up to the stop string, so a consult
    still *ends* the turn (:mod:`aipo_env.protocol`). The few characters after it stay in the
    token context only.
    """
    ends = [text.find(stop) + len(stop) for stop in stops if stop and stop in text]
    return text[: min(ends)] if ends else text


def closed_turn(text: str, ids: Sequence[int], eos_token_ids: Sequence[int], end_of_turn: str) -> str:
    """``text`` with ``end_of_turn`` appended when the turn's last sampled id is an EOS token.

    Decoding drops special tokens, so without this the env could not tell a turn the model ended
    from one cut by ``max_new_tokens``; in tools mode a tool call counts only in an ended turn (a
    cut one has no end-of-turn token before the tool message, so the ids would not be the chat
    template's rendering). Nothing changes when ``end_of_turn`` is empty (the text protocol).
    """
    return text + end_of_turn if end_of_turn and ids and ids[-1] in eos_token_ids else text


class Policy(ABC):
    """Acts in aipo environments.

    Attributes:
        trainable: whether :meth:`act` fills ``token_ids`` and ``logprobs`` (a learner needs them).
    """

    trainable: bool = False

    @abstractmethod
    def act(self, observations: Sequence[str]) -> list[Action]:
        """Return the next turn for each observation, in order.

        Args:
            observations: the transcript of each episode so far (one entry per episode).
        """

    def close(self) -> None:
        """Release models, clients or servers. Safe to call twice."""


@runtime_checkable
class TokenPolicy(Protocol):
    """A policy that learners can drive token by token (:class:`~policies.hf.HFPolicy` is one).

    A learner builds each episode's context from the env's segments, encoding the prompt with
    :meth:`encode_prompt` and every other piece with :meth:`encode_text`, and asks
    :meth:`generate` to continue many contexts at once; the sampled ids are kept as they are.
    """

    @property
    def pad_token_id(self) -> int:
        """The id that pads token sequences to a common length."""
        ...

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids that open an episode whose first segment is ``text``."""
        ...

    def encode_text(self, text: str) -> list[int]:
        """Token ids of text spliced into the transcript later on."""
        ...

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        """One turn after each context, with ``token_ids`` and ``logprobs`` filled."""
        ...


class LearnerEncoded:
    """A sampler that speaks the learner's tokens: a server or an engine that samples for an
    :class:`~policies.hf.HFPolicy` (``self.encoder``) from token ids.

    Prompts and helper text are encoded by the learner's tokenizer, and the sampled ids are kept
    as they are, decoded only for the text sent to the env (:meth:`action`), so the learner trains
    on exactly the tokens that were sampled.
    """

    encoder: Any  # the learner's HFPolicy
    stop: tuple[str, ...]  # the strings that end a turn

    @property
    def pad_token_id(self) -> int:
        return self.encoder.pad_token_id

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.encoder.eos_token_ids

    def encode_prompt(self, text: str) -> list[int]:
        return self.encoder.encode_prompt(text)

    def encode_text(self, text: str) -> list[int]:
        return self.encoder.encode_text(text)

    def action(self, ids: tuple[int, ...], logprobs: tuple[float, ...]) -> Action:
        """The turn of sampled ``ids`` (special tokens left out of its text) and their log-probs."""
        text = self.encoder.tokenizer.decode(list(ids), skip_special_tokens=True)
        ended = closed_turn(turn_text(text, self.stop), ids, self.eos_token_ids, self.encoder.end_of_turn)
        return Action(ended, ids, logprobs)

    def sleep(self) -> None:
        """Free what sampling holds while the learner updates (a colocated vLLM engine's KV cache);
        nothing by default. The next rollout wakes the sampler up."""
