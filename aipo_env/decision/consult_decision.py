"""When to consult, and whom: a discrete-action, vector-observation env for classic RL libraries.

A fixed :class:`~aipo_env.decision.solver.Solver` writes the text of a
:class:`~aipo_env.core.ReasoningEnv` episode; the policy of this env only decides, before each
step of the solver, whether it goes on, consults a helper, or answers. Stable-Baselines3 (PPO,
A2C, DQN) trains on it as it is; nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from aipo_env.agents import AgentsSpec
from aipo_env.core import ReasoningEnv
from aipo_env.decision.solver import NoisyArithmeticSolver, Solver, SolverSignals


class Decision(IntEnum):
    """The actions of :class:`ConsultDecisionEnv`."""

    CONTINUE = 0
    VERIFY = 1
    KNOWLEDGE = 2
    REASONING = 3
    ANSWER = 4

    @property
    def agent(self) -> str | None:
        """The consulted agent's name, or ``None`` for continue and answer."""
        return {1: "verify", 2: "knowledge", 3: "reasoning"}.get(int(self))


AGENTS: tuple[str, ...] = ("verify", "knowledge", "reasoning")

#: names of the observation entries, in order (baselines read features by name)
FEATURES: tuple[str, ...] = (
    "turn",
    "consults_left",
    *(f"{agent}_used" for agent in AGENTS),
    *(f"{agent}_left" for agent in AGENTS),
    "steps_written",
    "steps_left",
    "step_confidence",
    "min_confidence",
    "mean_logprob",
    "self_check_failed",
    "last_step_confirmed",
    "has_candidate",
    "difficulty",
    "difficulty_known",
)
_LOGPROB_FLOOR = -5.0


class ConsultDecisionEnv(gym.Env[np.ndarray, np.int64]):
    """## Description

    Deciding *when to ask for help, and whom*, as an RL problem of its own. Each episode is one
    problem of an underlying :class:`~aipo_env.core.ReasoningEnv` (by default the built-in
    arithmetic chains at levels 1-10). A fixed solver writes the solution one step at a time;
    with :class:`~aipo_env.decision.solver.NoisyArithmeticSolver` a step goes wrong more often
    the harder the problem, and the solver reports how confident it is. Before every step the
    policy decides: let the solver go on, have it consult the Verify, Knowledge or Reasoning
    agent (the consult and the reply go through the reasoning env as text turns), or answer.
    Reasoning repairs the first wrong step (or supplies the next one), Verify flags a wrong last
    step so the solver redoes it, Knowledge helps little. Consults cost reward, so the best
    policy consults selectively: rarely on easy problems and confident steps, more on hard ones.

    ## Action Space

    ``Discrete(5)``: 0 continue (the solver writes its next step; with a complete chain it
    answers), 1 consult Verify, 2 consult Knowledge, 3 consult Reasoning, 4 answer now (the
    solver states its current value, finished or not).

    ## Observation Space

    ``Box(0, 1, (18,), float32)``; entry names are in ``FEATURES``:

    | index | name | meaning |
    |-------|------|---------|
    | 0 | turn | decisions taken / ``max_decisions`` |
    | 1 | consults_left | consults left / ``max_consults`` |
    | 2-4 | verify_used, knowledge_used, reasoning_used | answered consults / ``max_consults`` |
    | 5-7 | verify_left, knowledge_left, reasoning_left | consults left per agent / ``max_consults`` |
    | 8 | steps_written | steps in the solver's chain / ``max_steps`` |
    | 9 | steps_left | steps still to write / ``max_steps`` (0 when unknown) |
    | 10 | step_confidence | solver's confidence in its last step (1 before any step) |
    | 11 | min_confidence | lowest confidence among unconfirmed steps (1 if none) |
    | 12 | mean_logprob | ``1 + mean log-confidence / 5``, clipped to ``[0, 1]`` |
    | 13 | self_check_failed | 1 if the solver's re-check of its last step disagreed |
    | 14 | last_step_confirmed | 1 if a helper confirmed or supplied the last step |
    | 15 | has_candidate | 1 once the chain is complete (a candidate answer exists) |
    | 16 | difficulty | ``difficulty / max_difficulty`` (0 when unknown) |
    | 17 | difficulty_known | 1 if the problem has a numeric difficulty |

    ## Rewards

    The reasoning env's reward: the task score (1 for a right answer) on the last step, minus the
    reasoning env's ``consult_cost`` of the consulted agent for every answered consult. A
    consult refused for lack of budget costs nothing and changes nothing. Return =
    ``score - sum of consult costs``. Costs and budgets are the reasoning env's own: this env
    passes its arguments to the default env and reads them back from a given one.

    ## Episode End

    Terminates when the solver answers: on action 4, on action 0 with a complete chain, or on
    the ``max_decisions``-th decision (the solver then answers with what it has). Never
    truncates. ``info`` then holds ``correct``, ``score``, ``is_success`` (as SB3 reads it),
    ``extracted_answer`` and ``solver_errors``; the reasoning env's ``episode`` record is not
    forwarded, so SB3's ``Monitor`` and Gymnasium's ``RecordEpisodeStatistics`` can own that key.

    ## Arguments

    * ``env``: the reasoning env (or a Gymnasium wrapper of one) with consults answered by
      agents. Default: ``ArithmeticEnv(level=level, split=split, seed=task_seed)`` with the
      reference agents.
    * ``solver``: the fixed solver. Default: ``NoisyArithmeticSolver()``.
    * ``agents``: the default env's helpers (default ``"reference"``, offline); an agent
      missing there makes its consults refused. Ignored when ``env`` is given.
    * ``consult_cost``: reward subtracted per answered consult, one float for all agents or a
      dict agent -> cost. Default 0.05. With ``env`` given, set it on that env instead.
    * ``max_consults``: consults per episode, all agents together (default 6);
      ``max_consults_per_agent``: an int or a dict agent -> int (default: no per-agent limit;
      with ``env`` given, that env's own).
    * ``max_decisions``: decisions per episode (default 24); ``max_steps``: the step count that
      normalises ``steps_*`` (default 10); ``max_difficulty``: normalises ``difficulty``
      (default 10).
    * ``level``, ``split``, ``task_seed``: the default arithmetic env's levels (default
      ``(1, 10)``), split and generator seed; ignored when ``env`` is given.
    * ``render_mode``: ``"ansi"`` returns the reasoning env's transcript.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        env: gym.Env | None = None,
        solver: Solver | None = None,
        agents: AgentsSpec = "reference",
        consult_cost: float | Mapping[str, float] | None = None,
        max_consults: int = 6,
        max_consults_per_agent: int | Mapping[str, int] | None = None,
        max_decisions: int = 24,
        max_steps: int = 10,
        max_difficulty: float = 10.0,
        level: int | tuple[int, int] = (1, 10),
        split: str = "train",
        task_seed: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if max_consults < 0 or max_decisions < 1 or max_steps < 1 or max_difficulty <= 0:
            raise ValueError(
                "max_consults must be >= 0 and max_decisions, max_steps, max_difficulty positive; got "
                f"{max_consults}, {max_decisions}, {max_steps}, {max_difficulty}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if env is not None and (consult_cost is not None or max_consults_per_agent is not None):
            raise ValueError(
                "with env= given, set consult_cost and max_consults_per_agent on that reasoning env: "
                "its costs and budgets are the ones that count"
            )
        self.max_consults, self.max_decisions = max_consults, max_decisions
        self.max_steps, self.max_difficulty = max_steps, max_difficulty
        self.render_mode = render_mode
        if env is None:
            costs = _per_agent(0.05 if consult_cost is None else consult_cost, "consult_cost", float)
            limits = (
                None
                if max_consults_per_agent is None
                else _per_agent(max_consults_per_agent, "max_consults_per_agent", int)
            )
            env = _default_env(level, split, task_seed, agents, max_consults, costs, limits)
        self.reasoning_env = env
        self._inner = _check_reasoning_env(self.reasoning_env, max_consults)
        self.solver = solver if solver is not None else NoisyArithmeticSolver()
        self.action_space = spaces.Discrete(len(Decision))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(len(FEATURES),), dtype=np.float32)
        self._decisions = 0
        self._transcript = ""
        self._difficulty: Any = None
        self._done = True

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a drawn problem, or on ``options["index"]`` of the reasoning env."""
        super().reset(seed=seed)
        index = (options or {}).get("index")
        if index is None:
            index = int(self.np_random.integers(len(self._inner.task)))
        self._transcript, inner_info = self.reasoning_env.reset(options={"index": index})
        problem = self._inner.problem
        assert problem is not None
        self.solver.start(problem, self.np_random)
        self._decisions = 0
        self._difficulty = problem.difficulty
        self._done = False
        info = self._info()
        info["problem"] = inner_info["problem"]
        return self._observation(), info

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Carry out one decision; see the class docstring for rewards and episode end."""
        if self._done:
            raise ResetNeeded("step() was called on an episode that has ended; call reset() first")
        try:
            decision = Decision(int(action))
        except (TypeError, ValueError):
            raise ValueError(f"action must be an integer in 0..{len(Decision) - 1}, got {action!r}") from None
        self._decisions += 1
        reward, outcome, final_info = 0.0, "wrote_step", {}
        if decision is Decision.ANSWER or (
            decision is Decision.CONTINUE and self.solver.signals().has_candidate
        ):
            reward, final_info = self._answer()
            outcome = "answered"
        elif decision is Decision.CONTINUE:
            self.solver.write_step()
        else:
            reward, outcome, final_info = self._consult(decision.agent or "")
        if not self._done and self._decisions >= self.max_decisions:
            answer_reward, final_info = self._answer()
            reward += answer_reward
            outcome = f"{outcome}+forced_answer"
        info = self._info()
        info["decision"] = decision.name.lower()
        info["outcome"] = outcome
        info.update(final_info)
        return self._observation(), reward, self._done, False, info

    def render(self) -> str | None:
        return self._transcript if self.render_mode == "ansi" else None

    def close(self) -> None:
        self.reasoning_env.close()
        super().close()

    # -- decisions -----------------------------------------------------------------------------

    def _consult(self, agent: str) -> tuple[float, str, dict[str, Any]]:
        """Send the solver's pending text plus a consult; returns (reward, outcome, final info)."""
        if self._left(agent) <= 0:
            return 0.0, "refused", {}
        protocol = self._inner.protocol
        pending = self.solver.take_text()
        request = protocol.consult(agent, self.solver.query(agent))
        action = f"{pending}\n{request}" if pending else request
        previous = self._transcript
        self._transcript, reward, terminated, _, inner_info = self.reasoning_env.step(action)
        if terminated:  # a given reasoning env ran out of turns and scored the turn as final
            return float(reward), "ended_by_reasoning_env", self._finish(inner_info)
        if inner_info["action"]["outcome"] != "answered":
            return float(reward), str(inner_info["action"]["outcome"]), {}
        self.solver.read_feedback(
            agent, _feedback(self._transcript[len(previous) :], protocol.feedback_tag, agent)
        )
        return float(reward), "consulted", {}  # the reasoning env already took the consult's cost

    def _answer(self) -> tuple[float, dict[str, Any]]:
        pending = self.solver.take_text()
        final = f"{pending}\n{self.solver.answer()}" if pending else self.solver.answer()
        self._transcript, reward, terminated, _, inner_info = self.reasoning_env.step(final)
        if not terminated:
            raise RuntimeError(
                "the reasoning env did not end the episode on a final response; ConsultDecisionEnv "
                "needs the standard action protocol (any turn without a trailing consult is final)"
            )
        return float(reward), self._finish(inner_info)

    def _finish(self, inner_info: dict[str, Any]) -> dict[str, Any]:
        """End the episode; the final info, without the reasoning env's ``episode`` record."""
        self._done = True
        correct = bool(inner_info.get("correct", False))
        return {
            "correct": correct,
            "is_success": correct,
            "score": float(inner_info.get("score", 0.0)),
            "extracted_answer": inner_info.get("extracted_answer"),
            "solver_errors": self.solver.errors,
        }

    # -- observation and info ------------------------------------------------------------------

    def _consults_left(self) -> int:
        return self.max_consults - sum(self._inner.consults_used(agent) for agent in AGENTS)

    def _left(self, agent: str) -> int:
        """Consults of ``agent`` still possible: this env's budget and the reasoning env's."""
        return min(self._consults_left(), self._inner.consults_left(agent))

    def _observation(self) -> np.ndarray:
        signals: SolverSignals = self.solver.signals()
        left = self._consults_left()
        budget = max(self.max_consults, 1)
        steps_left = 0 if signals.steps_total is None else signals.steps_total - signals.steps_written
        difficulty_known = isinstance(self._difficulty, (int, float)) and not isinstance(
            self._difficulty, bool
        )
        values = [
            self._decisions / self.max_decisions,
            left / budget,
            *(self._inner.consults_used(agent) / budget for agent in AGENTS),
            *(max(self._left(agent), 0) / budget for agent in AGENTS),
            signals.steps_written / self.max_steps,
            steps_left / self.max_steps,
            signals.step_confidence,
            signals.min_confidence,
            1.0 + signals.mean_logprob / -_LOGPROB_FLOOR,
            float(signals.self_check_failed),
            float(signals.last_step_confirmed),
            float(signals.has_candidate),
            float(self._difficulty) / self.max_difficulty if difficulty_known else 0.0,
            float(difficulty_known),
        ]
        return np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)

    def _info(self) -> dict[str, Any]:
        signals = self.solver.signals()
        return {
            "decisions": self._decisions,
            "consults": {agent: self._inner.consults_used(agent) for agent in AGENTS},
            "consults_left": self._consults_left(),
            "steps_written": signals.steps_written,
            "difficulty": self._difficulty,
        }


def _per_agent(value: Any, name: str, kind: type) -> dict[str, Any]:
    """One value for every agent, or a dict agent -> value naming only known agents."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(AGENTS)
        missing = set(AGENTS) - set(value)
        if unknown or missing:
            raise ValueError(
                f"{name} must name each of {AGENTS} exactly (unknown: {sorted(unknown)}, missing: "
                f"{sorted(missing)}), or be a single number for all agents"
            )
        return {agent: kind(value[agent]) for agent in AGENTS}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or a dict agent -> number, got {value!r}")
    return dict.fromkeys(AGENTS, kind(value))


def _default_env(
    level: int | tuple[int, int],
    split: str,
    seed: int,
    agents: AgentsSpec,
    max_consults: int,
    costs: Mapping[str, float],
    limits: Mapping[str, int] | None,
) -> ReasoningEnv:
    from aipo_env.envs import ArithmeticEnv

    return ArithmeticEnv(
        level=level,
        split=split,
        seed=seed,
        agents=agents,
        max_turns=max_consults + 1,
        max_consults=max_consults,
        max_consults_per_agent=limits,
        consult_cost=costs,
        instructions=False,
    )


def _check_reasoning_env(env: gym.Env, max_consults: int) -> ReasoningEnv:
    inner = env.unwrapped
    if not isinstance(inner, ReasoningEnv):
        raise TypeError(f"env must be a ReasoningEnv or a wrapper of one, got {type(inner).__name__}")
    if inner.consult_mode != "agents":
        raise ValueError(
            "env must answer consults (consult='agents'); the decision is pointless in 'off' mode"
        )
    if inner.max_consults < max_consults or inner.max_turns <= max_consults:
        raise ValueError(
            f"env allows {inner.max_consults} consults in {inner.max_turns} turns; ConsultDecisionEnv "
            f"needs max_consults >= {max_consults} and max_turns >= {max_consults + 1} there"
        )
    return inner


def _feedback(new_text: str, tag: str, agent: str) -> str:
    """The last ``<tag agent="agent">reply</tag>`` in the text a consult added."""
    replies = re.findall(rf'<{tag} agent="{re.escape(agent)}">(.*?)</{tag}>', new_text, flags=re.DOTALL)
    return replies[-1] if replies else ""
