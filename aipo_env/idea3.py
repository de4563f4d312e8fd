"""Idea3: two players solve one problem together, in PettingZoo's parallel API (ILR's interaction).

Each episode has three stages, played by both players at once (``step`` takes both actions):

1. **share**: each player sees the problem exactly as a single-player env shows it with
   consults off (``task.prompt(problem)``) and writes its solution;
2. **analyse**: each sees its partner's idea, framed by its own mode, and critiques it;
3. **fuse**: each sees its partner's critique and the problem restated, and writes its own final
   solution, which the task scores on its own.

:func:`idea3_aec_env` wraps the same env in the turn-based AEC API (``player_0`` then ``player_1``
in every stage; a player's action is applied when both have acted, so neither sees the other's
text of the same stage). Nothing here imports torch.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from aipo_env.episode import EpisodeRecord, Segment
from aipo_env.spaces import Transcript
from aipo_env.tasks.arithmetic import ArithmeticTask
from aipo_env.tasks.base import Problem, Task

Mode = Literal["cooperate", "compete"]
Stage = Literal["share", "analyse", "fuse", "done"]
PLAYERS: tuple[str, str] = ("player_0", "player_1")
STAGES: tuple[Stage, ...] = ("share", "analyse", "fuse")

FRAMING: dict[Mode, str] = {
    "cooperate": "We are a team. Check your partner's idea: say what is right and fix what is wrong.",
    "compete": "We are rivals. Find the mistakes in your partner's idea before you answer.",
}
FUSE_NOTE = "Now write your own final solution to the problem:"


class Idea3Env(ParallelEnv):
    """Two players share, analyse and fuse ideas on one problem of a task.

    ## Description
    ILR's Idea3 exchange (see :mod:`algorithms.ilr`) over any :class:`~aipo_env.tasks.base.Task`.

    ## Action Space
    Per player, a :class:`~aipo_env.spaces.Transcript` of at most ``max_action_chars``; longer
    texts are cut (``info["cut"]`` counts the cuts).

    ## Observation Space
    Per player, its own transcript so far (a :class:`Transcript`): the problem, its own turns, the
    partner's share and critique, and the stage notes.

    ## Rewards
    0 after the share and analyse stages; after fuse, the task's score of the player's final
    solution. ``info["share_score"]`` holds the score of its shared idea, for diagnostics.

    ## Episode End
    Both players terminate after the fuse stage. ``info["episode"]`` is then each player's
    :class:`~aipo_env.episode.EpisodeRecord`: segments ``prompt`` (problem and notes),
    ``policy`` (its turns) and ``agent`` (its partner's texts, ``agent`` = the partner's name).

    ## Arguments
    task: the problems (default: the built-in arithmetic family, levels 1-3).
    max_action_chars: the longest turn kept.
    render_mode: ``"ansi"`` returns both transcripts.

    ``reset(options={"index": i, "modes": {"player_0": "cooperate", ...}})`` picks the problem
    and each player's framing (default: both cooperate).

    ## Version History
    v0: first version.
    """

    metadata = {"name": "aipo_idea3_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self, task: Task | None = None, *, max_action_chars: int = 2000, render_mode: str | None = None
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if max_action_chars < 1:
            raise ValueError(f"max_action_chars must be positive, got {max_action_chars}")
        self.task = task or ArithmeticTask()
        self.max_action_chars, self.render_mode = max_action_chars, render_mode
        self.possible_agents = list(PLAYERS)
        # PettingZoo expects the same space object on every call.
        self._action_space = Transcript(max_action_chars)
        self._observation_space = Transcript(16384 + 3 * 2 * max_action_chars + 1024)
        self.agents: list[str] = []
        self.problem: Problem | None = None
        self.stage: Stage = "done"
        self.modes: dict[str, Mode] = {}
        self.segments: dict[str, list[Segment]] = {}
        self._turns: dict[str, list[str]] = {}
        self._cuts: dict[str, int] = {}

    def observation_space(self, agent: str) -> Transcript:
        return self._observation_space

    def action_space(self, agent: str) -> Transcript:
        return self._action_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict]]:
        """Start on problem ``options["index"]`` (else one drawn with ``seed``) with the given modes."""
        options = options or {}
        index = options.get("index")
        if index is None:
            index = random.Random(seed).randrange(len(self.task))
        if not isinstance(index, int) or not 0 <= index < len(self.task):
            raise ValueError(f"options['index'] must be an int in 0..{len(self.task) - 1}, got {index!r}")
        modes = {player: "cooperate" for player in PLAYERS} | dict(options.get("modes") or {})
        for player, mode in modes.items():
            if player not in PLAYERS or mode not in FRAMING:
                raise ValueError(
                    f"options['modes'] maps {PLAYERS} to 'cooperate' or 'compete', got {player!r}: {mode!r}"
                )
        self.problem = self.task.problem(index)
        self.modes = modes  # type: ignore[assignment]
        self.agents = list(PLAYERS)
        self.stage = "share"
        prompt = self.task.prompt(self.problem)
        self.segments = {player: [Segment("prompt", None, prompt + "\n")] for player in PLAYERS}
        self._turns = {player: [] for player in PLAYERS}
        self._cuts = dict.fromkeys(PLAYERS, 0)
        return self._observations(), {player: self._info(player) for player in PLAYERS}

    def step(self, actions: dict[str, str]) -> tuple[dict, dict, dict, dict, dict]:
        """Both players' texts for the current stage; returns PettingZoo's five dicts."""
        if self.stage == "done" or self.problem is None:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"step needs an action for every player; missing {sorted(missing)}")
        for player in PLAYERS:
            text = str(actions[player])
            if len(text) > self.max_action_chars:
                text, self._cuts[player] = text[: self.max_action_chars], self._cuts[player] + 1
            self._turns[player].append(text)
            self.segments[player].append(Segment("policy", None, text))
        stage = self.stage
        self.stage = STAGES[STAGES.index(stage) + 1] if stage != "fuse" else "done"
        rewards = dict.fromkeys(PLAYERS, 0.0)
        if self.stage == "done":
            rewards = {player: self._score(player, self._turns[player][-1]) for player in PLAYERS}
        else:
            for player, partner in (PLAYERS, PLAYERS[::-1]):
                self._show_partner(player, partner, stage)
        done = self.stage == "done"
        infos = {player: self._info(player, rewards[player] if done else None) for player in PLAYERS}
        observations = self._observations()
        terminations = dict.fromkeys(PLAYERS, done)
        truncations = dict.fromkeys(PLAYERS, False)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n\n".join(f"== {player} ==\n{self._transcript(player)}" for player in PLAYERS)

    def close(self) -> None:
        """Nothing to release."""

    # -- internals -----------------------------------------------------------------------------

    def _show_partner(self, player: str, partner: str, stage: Stage) -> None:
        assert self.problem is not None
        text = self._turns[partner][-1]
        if stage == "share":
            piece = f'\n<idea agent="{partner}">{text}</idea>\n'
            note = FRAMING[self.modes[player]] + "\n"
        else:
            piece = f'\n<analysis agent="{partner}">{text}</analysis>\n'
            # The problem is restated as at the start, so the final solution answers it afresh.
            note = f"{FUSE_NOTE}\n{self.task.prompt(self.problem)}\n"
        self.segments[player] += [Segment("agent", partner, piece), Segment("prompt", "system", note)]

    def _score(self, player: str, text: str) -> float:
        assert self.problem is not None
        return float(self.task.score(self.problem, text).reward)

    def _transcript(self, player: str) -> str:
        return "".join(segment.text for segment in self.segments[player])

    def _observations(self) -> dict[str, str]:
        return {player: self._transcript(player) for player in PLAYERS}

    def _info(self, player: str, reward: float | None = None) -> dict[str, Any]:
        assert self.problem is not None
        info: dict[str, Any] = {
            "stage": self.stage,
            "mode": self.modes[player],
            "problem": {"id": self.problem.id, "difficulty": self.problem.difficulty},
            "cut": self._cuts[player],
        }
        if reward is not None:
            score = self.task.score(self.problem, self._turns[player][-1])
            info["correct"] = bool(score.correct)
            info["share_score"] = self._score(player, self._turns[player][0])
            info["episode"] = EpisodeRecord(
                segments=list(self.segments[player]),
                reward=reward,
                score=reward,
                correct=bool(score.correct),
                problem_id=self.problem.id,
                extracted_answer=score.extracted,
            )
        return info


def idea3_aec_env(**kwargs: Any) -> AECEnv:
    """:class:`Idea3Env` in PettingZoo's turn-based AEC API (``player_0`` acts first in each stage)."""
    return parallel_to_aec(Idea3Env(**kwargs))
