"""The reasoning environment: one problem per episode, turns of text, consults answered by agents.

:class:`ReasoningEnv` is task-agnostic; the registered envs in :mod:`aipo_env.envs` pick a task
and document it. The rules below are shared by all of them.

Reward of one step:

    r_t = score(final response)              on the step that ends the episode
          - consult_cost                      on a step whose consult an agent answered
          - invalid_action_penalty            on a step with an invalid consult (see protocol)

so the episode return is ``score - consult_cost * answered_consults - penalty * invalid_actions``.
The episode ends (``terminated=True``) on a final response, or on the ``max_turns``-th turn,
whose text is then scored as the final response with any trailing consult removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
from gymnasium.error import ResetNeeded

from aipo_env.agents import Agent, AgentReply, AgentsSpec, ConsultRequest, build_agents
from aipo_env.agents.base import failure_kind
from aipo_env.episode import EpisodeRecord, Segment, TokenLogprobs
from aipo_env.protocol import ActionKind, ParsedAction, Protocol
from aipo_env.spaces import Transcript
from aipo_env.tasks.base import Problem, Task
from aipo_env.tool_calls import ToolCallProtocol

ConsultMode = Literal["agents", "off"]
_NOTE_ROOM = 200


class ReasoningEnv(gym.Env[str, str]):
    """A text environment over a :class:`~aipo_env.tasks.base.Task` with consult actions.

    Args:
        task: the problems and their scorer.
        agents: ``"reference"``, ``None``, an ``AgentsConfig`` (or the path of a ``.json``/``.yaml``
            one) or a dict role -> Agent or ``AgentConfig`` (see :func:`build_agents`).
        consult: ``"agents"`` answers consults; ``"off"`` appends them unanswered (evaluation).
        max_turns: turns per episode; the last turn is always scored as the final response.
        max_consults: answered consults per episode, all agents together.
        max_consults_per_agent: an int for every agent, or a dict role -> int; ``None`` = no
            per-agent limit.
        consult_cost: subtracted from the reward for every answered consult: one number >= 0 for
            every agent, or a dict role -> cost (agents it leaves out cost nothing).
        invalid_action_penalty: subtracted for every invalid consult (unknown agent, empty or
            nested query).
        max_feedback_chars: agent replies are cut to this many characters.
        max_prompt_chars: problem prompts are cut to this many characters (``info`` says so).
        instructions: append the consult instructions to the prompt in ``consult="agents"`` mode.
        reveal_answer: put the reference answer into ``info["problem"]``.
        protocol: the action protocol: a :class:`~aipo_env.protocol.Protocol` (text tags; tag
            names, agent names, action size limit), a :class:`~aipo_env.tool_calls.ToolCallProtocol`
            (consults as chat-model tool calls; see ``docs/tool_calls.md``), or their defaults by
            name, ``"text"`` or ``"tools"``.
        render_mode: ``"ansi"`` (return the transcript) or ``"human"`` (print it).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(
        self,
        task: Task,
        *,
        agents: AgentsSpec = "reference",
        consult: ConsultMode = "agents",
        max_turns: int = 6,
        max_consults: int = 4,
        max_consults_per_agent: int | Mapping[str, int] | None = None,
        consult_cost: float | Mapping[str, float] = 0.0,
        invalid_action_penalty: float = 0.1,
        max_feedback_chars: int = 1024,
        max_prompt_chars: int = 16384,
        instructions: bool = True,
        reveal_answer: bool = False,
        protocol: Protocol | ToolCallProtocol | Literal["text", "tools"] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if consult not in ("agents", "off"):
            raise ValueError(f"consult must be 'agents' or 'off', got {consult!r}")
        if max_turns < 1 or max_consults < 0 or max_feedback_chars < 1 or max_prompt_chars < 1:
            raise ValueError("max_turns and the character limits must be positive and max_consults >= 0")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if len(task) < 1:
            raise ValueError(f"task {task.name!r} has no problems")
        self.task = task
        self.protocol = _protocol(protocol)
        self.agents: dict[str, Agent] = build_agents(agents, self.protocol.agents)
        self.consult_mode: ConsultMode = consult
        self.max_turns, self.max_consults = max_turns, max_consults
        self.per_agent_limits = _per_agent_limits(max_consults_per_agent, self.protocol.agents)
        self.consult_costs = _per_agent_costs(consult_cost, self.protocol.agents)
        self.invalid_action_penalty = invalid_action_penalty
        self.max_feedback_chars, self.max_prompt_chars = max_feedback_chars, max_prompt_chars
        self.instructions, self.reveal_answer = instructions, reveal_answer
        self.render_mode = render_mode
        turn_room = self.protocol.max_action_chars + max_feedback_chars + _NOTE_ROOM
        self.action_space = Transcript(self.protocol.max_action_chars)
        self.observation_space = Transcript(max_prompt_chars + _NOTE_ROOM * 4 + max_turns * turn_room)
        self.problem: Problem | None = None
        self._record = EpisodeRecord()
        self._observation = ""
        self._turn = 0
        self._done = True
        self._score_details: dict[str, Any] = {}

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        """Start an episode on a drawn problem, or on ``options["index"]``."""
        super().reset(seed=seed)
        index = _chosen_index(options, len(self.task))
        if index is None:
            index = int(self.np_random.integers(len(self.task)))
        self.problem = self.task.problem(index)
        prompt = self.task.prompt(self.problem)
        trimmed = len(prompt) > self.max_prompt_chars
        prompt = prompt[: self.max_prompt_chars]
        if self.instructions and self.consult_mode == "agents" and self.agents:
            prompt = f"{prompt}\n{self._consult_instructions()}"
        self._record = EpisodeRecord(
            consults={name: 0 for name in self.protocol.agents}, problem_id=self.problem.id
        )
        self._observation = ""
        self._turn = 0
        self._done = False
        self._append(Segment("prompt", None, prompt + "\n"))
        info = self._info()
        info["problem"]["index"] = index
        info["problem"]["prompt_trimmed"] = trimmed
        return self._observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        """Play one turn; see the module docstring for rewards and episode end."""
        if self._done or self.problem is None:
            raise ResetNeeded(
                "step() was called on an episode that has ended (or never started); call reset() first"
            )
        parsed = self.protocol.parse(action)
        self._turn += 1
        self._append(Segment("policy", None, parsed.text))
        last_turn = self._turn >= self.max_turns
        reward, outcome, agent_error = 0.0, "scored", None
        if parsed.kind is ActionKind.INVALID:
            reward -= self.invalid_action_penalty
            self._record.invalid_actions += 1
            if not last_turn:
                outcome = "penalised"
                self._note(
                    f"Invalid consult ({parsed.issue.replace('_', ' ')}): {self._consult_instructions()}"
                )
        elif parsed.kind is ActionKind.CONSULT and not last_turn:
            reward, outcome, agent_error = self._consult(parsed)
        action_info: dict[str, Any] = {
            "kind": parsed.kind.value,
            "issue": parsed.issue,
            "agent": parsed.agent,
        }
        if agent_error is not None:
            action_info["agent_error"] = agent_error
        if outcome == "scored":
            reward += self._finish(parsed)
            action_info["forced_final"] = parsed.kind is not ActionKind.FINAL
        action_info["outcome"] = outcome
        self._record.reward += reward
        info = self._info()
        info["action"] = action_info
        if self._done:
            info.update(self._final_info())
        if self.render_mode == "human":
            self.render()
        return self._observation, reward, self._done, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._observation
        if self.render_mode == "human":
            print(self._observation)
        return None

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
        self.task.close()
        super().close()

    # -- consults ------------------------------------------------------------------------------

    def _consult(self, parsed: ParsedAction) -> tuple[float, str, str | None]:
        """Answer a consult; returns (reward, outcome, agent error)."""
        agent_name = parsed.agent or ""
        if self.consult_mode == "off":
            self._record.unanswered_consults += 1
            return 0.0, "off", None
        refusal = self._refusal(agent_name)
        if refusal is not None:
            self._record.unanswered_consults += 1
            self._note(refusal)
            return 0.0, "refused", None
        assert self.problem is not None
        request = ConsultRequest(
            agent_name, parsed.query, self.problem, self.task, tuple(self._record.segments)
        )
        try:
            reply = self.agents[agent_name].reply(request)
            text, ok, error = str(reply.text), reply.ok, reply.error
            kind = (reply.error_kind or "error") if not ok else "reply"
        except Exception as exc:  # an agent must never break an episode: report it and go on
            text, ok, error = "", False, f"{type(exc).__name__}: {exc}"[:300]
            kind = failure_kind(exc)
        if not ok or not text.strip():
            self._record.agent_failures += 1
            kinds = self._record.agent_failure_kinds
            kinds[kind] = kinds.get(kind, 0) + 1
            self._record.unanswered_consults += 1
            self._note(f"The {agent_name} agent is unavailable right now; continue on your own.")
            return 0.0, "agent_error", error or "empty reply"
        logprobs = None
        trimmed = len(text) > self.max_feedback_chars
        if trimmed:
            text = text[: self.max_feedback_chars - 12] + " [trimmed]"
        feedback = self.protocol.feedback(agent_name, text)
        start = len(self.protocol.feedback_wrapper(agent_name)[0])
        if not trimmed and feedback[start : start + len(text)] == text:
            logprobs = _reply_logprobs(reply, start, len(text))  # not for a cut or escaped reply
        self._record.consults[agent_name] += 1
        self._append(Segment("agent", agent_name, feedback, logprobs))
        cost = self.consult_costs.get(agent_name, 0.0)
        return (-cost if cost else 0.0), "answered", None

    def consults_used(self, agent_name: str) -> int:
        """Consults of ``agent_name`` answered in this episode."""
        return self._record.consults.get(agent_name, 0)

    def consults_left(self, agent_name: str) -> int:
        """How many more consults of ``agent_name`` this episode would answer (0 for an agent
        the env lacks): the smaller of the shared and the agent's own budget."""
        if agent_name not in self.agents:
            return 0
        left = self.max_consults - sum(self._record.consults.values())
        limit = self.per_agent_limits.get(agent_name)
        if limit is not None:
            left = min(left, limit - self.consults_used(agent_name))
        return max(left, 0)

    def _refusal(self, agent_name: str) -> str | None:
        if agent_name not in self.agents:
            return f"No {agent_name} agent is available in this environment; continue on your own."
        if sum(self._record.consults.values()) >= self.max_consults:
            return f"The consult budget ({self.max_consults} per episode) is used up; continue on your own."
        limit = self.per_agent_limits.get(agent_name)
        if limit is not None and self._record.consults[agent_name] >= limit:
            return f"The {agent_name} agent's budget ({limit} per episode) is used up; continue on your own."
        return None

    def _consult_instructions(self) -> str:
        return self.protocol.instructions([name for name in self.protocol.agents if name in self.agents])

    # -- bookkeeping ---------------------------------------------------------------------------

    def _finish(self, parsed: ParsedAction) -> float:
        assert self.problem is not None
        response = (
            parsed.text if parsed.kind is ActionKind.FINAL else self.protocol.strip_consult(parsed.text)
        )
        score = self.task.score(self.problem, response)
        self._record.score, self._record.correct = score.reward, score.correct
        self._record.extracted_answer = score.extracted
        self._score_details = dict(score.details)
        self._done = True
        return score.reward

    def _note(self, text: str) -> None:
        self._append(Segment("prompt", "system", self.protocol.feedback("system", text)))

    def _append(self, segment: Segment) -> None:
        self._record.segments.append(segment)
        self._observation += segment.text

    def _info(self) -> dict[str, Any]:
        assert self.problem is not None
        answered = sum(self._record.consults.values())
        return {
            "turn": self._turn,
            "turns_left": self.max_turns - self._turn,
            "consults": dict(self._record.consults),
            "consults_left": max(0, self.max_consults - answered),
            "unanswered_consults": self._record.unanswered_consults,
            "agent_failures": self._record.agent_failures,
            "problem": self.problem.describe(self.reveal_answer),
        }

    def _final_info(self) -> dict[str, Any]:
        return {
            "correct": self._record.correct,
            "score": self._record.score,
            "extracted_answer": self._record.extracted_answer,
            "score_details": self._score_details,
            "episode": self._record,
        }


def _reply_logprobs(reply: AgentReply, start: int, length: int) -> TokenLogprobs | None:
    """The reply's token log-probs as recorded in its segment (``None`` if it reported none)."""
    values, pieces = getattr(reply, "token_logprobs", None), getattr(reply, "token_texts", None)
    if values is None:
        return None
    try:
        logprobs = tuple(float(value) for value in values)
        tokens = None if pieces is None else tuple(str(piece) for piece in pieces)
    except (TypeError, ValueError):  # an agent's garbage must not break the episode
        return None
    return TokenLogprobs(start, start + length, tokens, logprobs)


def _protocol(protocol: Protocol | ToolCallProtocol | str | None) -> Protocol | ToolCallProtocol:
    if protocol is None or protocol == "text":
        return Protocol()
    if protocol == "tools":
        return ToolCallProtocol()
    if not isinstance(protocol, (Protocol, ToolCallProtocol)):
        raise ValueError(
            f"protocol must be 'text', 'tools', a Protocol or a ToolCallProtocol, got {protocol!r}"
        )
    return protocol


def _per_agent_costs(costs: float | Mapping[str, float], names: tuple[str, ...]) -> dict[str, float]:
    if isinstance(costs, Mapping):
        unknown = set(costs) - set(names)
        if unknown:
            raise ValueError(f"consult_cost names unknown agents {sorted(unknown)}; known: {names}")
        chosen = {name: float(costs.get(name, 0.0)) for name in names}
    elif isinstance(costs, bool) or not isinstance(costs, (int, float)):
        raise ValueError(f"consult_cost must be a number or a dict agent -> number, got {costs!r}")
    else:
        chosen = dict.fromkeys(names, float(costs))
    if any(not cost >= 0 for cost in chosen.values()):
        raise ValueError(f"consult costs must be >= 0 (a negative cost pays for consulting), got {chosen}")
    return chosen


def _per_agent_limits(limits: int | Mapping[str, int] | None, names: tuple[str, ...]) -> dict[str, int]:
    if limits is None:
        return {}
    if isinstance(limits, int):
        return {name: limits for name in names}
    unknown = set(limits) - set(names)
    if unknown:
        raise ValueError(f"max_consults_per_agent names unknown agents {sorted(unknown)}; known: {names}")
    return dict(limits)


def _chosen_index(options: dict[str, Any] | None, size: int) -> int | None:
    if not options or options.get("index") is None:
        return None
    index = options["index"]
    if isinstance(index, bool) or not isinstance(index, int) and not hasattr(index, "__index__"):
        raise ValueError(f'options["index"] must be an integer, got {index!r}')
    index = int(index)
    if not 0 <= index < size:
        raise ValueError(
            f'options["index"]={index} is out of range: this dataset has {size} problems (0..{size - 1})'
        )
    return index
