"""Scripted baselines: policies without a model, for benchmarks, smoke tests and sanity checks.

* :class:`NeverConsult` answers at once.
* :class:`ConsultFirst` consults one agent on its first turn, then answers.
* :class:`RandomPolicy` consults a random agent or answers, at random.

None of them can reason; they answer with a guess read from the transcript (by default the last
number in it, boxed), which is how they get a score above zero on the arithmetic family once a
helper has revealed a step. Pass ``answer=`` to plug in a better guesser.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from aipo_env.protocol import AGENT_NAMES, Protocol
from policies.base import Action, Policy

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number_answer(observation: str) -> str:
    """Box the last number written in ``observation`` (``\\boxed{0}`` when there is none)."""
    numbers = _NUMBER.findall(observation)
    return f"The answer is \\boxed{{{numbers[-1] if numbers else 0}}}."


class NeverConsult(Policy):
    """Answers on the first turn, without consulting.

    Args:
        answer: maps an observation to the final response.
    """

    def __init__(self, answer: Callable[[str], str] = last_number_answer) -> None:
        self.answer = answer

    def act(self, observations: Sequence[str]) -> list[Action]:
        return [Action(self.answer(observation)) for observation in observations]


class ConsultFirst(Policy):
    """Consults ``agent`` once, on its first turn, then answers.

    Whether it has consulted is read from the observation (its own consult text appears in
    it), so the policy holds no state and acts on any batch of episodes.

    Args:
        agent: the agent to consult (``verify``, ``knowledge`` or ``reasoning``).
        query: the question it asks.
        answer: maps an observation to the final response.
        protocol: the env's action protocol, for the tag format.
    """

    def __init__(
        self,
        agent: str,
        query: str = "What is the next step?",
        answer: Callable[[str], str] = last_number_answer,
        protocol: Protocol | None = None,
    ) -> None:
        self.protocol = protocol or Protocol()
        if agent not in self.protocol.agents:
            raise ValueError(f"agent must be one of {', '.join(self.protocol.agents)}, got {agent!r}")
        if not query.strip():
            raise ValueError("query must not be empty: the env treats an empty consult as invalid")
        self.agent, self.query, self.answer = agent, query, answer
        self._consult = self.protocol.consult(agent, query)

    def act(self, observations: Sequence[str]) -> list[Action]:
        return [
            Action(self.answer(observation) if self._consult in observation else self._consult)
            for observation in observations
        ]


class RandomPolicy(Policy):
    """Consults a uniformly drawn agent with probability ``consult_prob``, otherwise answers.

    Args:
        consult_prob: probability of a consult on each turn.
        agents: the agents it may consult.
        answer: maps an observation to the final response.
        seed: seed of its random stream (the same seed gives the same choices).
        protocol: the env's action protocol, for the tag format.
    """

    def __init__(
        self,
        consult_prob: float = 0.5,
        agents: Sequence[str] = AGENT_NAMES,
        answer: Callable[[str], str] = last_number_answer,
        seed: int | None = None,
        protocol: Protocol | None = None,
    ) -> None:
        if not 0.0 <= consult_prob <= 1.0:
            raise ValueError(f"consult_prob must be in [0, 1], got {consult_prob}")
        if not agents:
            raise ValueError("agents must name at least one agent")
        self.consult_prob, self.agents, self.answer = consult_prob, tuple(agents), answer
        self.protocol = protocol or Protocol()
        self.rng = random.Random(seed)

    def act(self, observations: Sequence[str]) -> list[Action]:
        actions = []
        for observation in observations:
            if self.rng.random() < self.consult_prob:
                agent = self.rng.choice(self.agents)
                actions.append(Action(self.protocol.consult(agent, "Can you help with the next step?")))
            else:
                actions.append(Action(self.answer(observation)))
        return actions
