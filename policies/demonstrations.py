"""Worked-solution demonstrations of the arithmetic family, for the demo's supervised warm-up.

A demonstrator that knows the reference steps plays the env, so a demonstration is an ordinary
episode record. The solution format is the Reasoning agent's own step format, one step per line,
then the boxed answer::

    Step 1: 7 + 5 = 12
    Step 2: 12 * 3 = 36
    \\boxed{36}

Written alone (no consult) this is :func:`aipo_env.tasks.base.written_solution`, the turn that
RL's reference episodes play (``rollout.reference_per_group``).

A consult demonstration writes some steps itself and asks the Reasoning agent for the others,
ending a turn with ``<consult agent="reasoning">next step</consult>``; the agent's reply
``Step k: ...`` enters the transcript, and the demonstrator carries on from there. So the policy
sees how to ask, and that a revealed step reads exactly like one it writes itself.

Two consult styles. ``subset`` asks for a random set of steps and boxes after the last step; the
model must then count the steps of the chain itself, also after a revealed one. ``until_done``
writes the first steps, then asks for every remaining step and once more, until the agent
replies that all steps are written, and only then boxes the last result: the stopping rule is
the agent's word, not a count, so a consulting episode ends correct whenever the helper is right.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import gymnasium as gym

import aipo_env  # noqa: F401  (registers the env ids)
from aipo_env.episode import EpisodeRecord
from aipo_env.protocol import Protocol

CONSULT_QUERY = "next step"
ARITHMETIC = "aipo/Arithmetic-v0"


def solution_turns(
    steps: tuple[str, ...], answer: str, consulted: Iterable[int], *, confirm: bool = False
) -> list[str]:
    """The demonstrator's turns for a problem whose reference steps are ``steps``.

    Args:
        steps: the reference steps (``"7 + 5 = 12"``), in order.
        answer: the final answer.
        consulted: 1-based numbers of the steps asked of the Reasoning agent instead of written.
        confirm: ask once more after the last step (the agent answers that all steps are
            written) before boxing.

    Returns:
        One string per turn; every turn but the last ends with a consult request.
    """
    asked = set(consulted)
    turns, current = [], ""
    for number, step in enumerate(steps, start=1):
        if number in asked:
            turns.append(current + Protocol().consult("reasoning", CONSULT_QUERY))
            current = ""
        else:
            current += f"Step {number}: {step}\n"
    if confirm:
        turns.append(current + Protocol().consult("reasoning", CONSULT_QUERY))
        current = ""
    turns.append(f"{current}\\boxed{{{answer}}}")
    return turns


def demonstrate(
    env: gym.Env, index: int, consulted: Iterable[int] = (), *, confirm: bool = False
) -> EpisodeRecord:
    """Play problem ``index`` of ``env`` with the demonstrator and return the episode record.

    Raises:
        RuntimeError: when the episode does not end correct (the env's turn or consult budget
            is too small for the steps asked).
    """
    env.reset(options={"index": index})
    problem = env.unwrapped.problem
    info: dict = {}
    for turn in solution_turns(problem.steps, problem.answer, consulted, confirm=confirm):
        _, _, terminated, _, info = env.step(turn)
        if terminated:
            break
    record = info.get("episode")
    if not isinstance(record, EpisodeRecord) or not record.correct:
        raise RuntimeError(
            f"the demonstration of problem {index} did not end correct: raise the env's max_turns "
            "and max_consults to at least the number of steps (+1 turn for the answer)"
        )
    return record


def warmup_demonstrations(
    env_kwargs: dict,
    count: int,
    consult_share: float,
    seed: int = 0,
    style: str = "subset",
    env_id: str = ARITHMETIC,
) -> list[EpisodeRecord]:
    """``count`` demonstrations on problems ``0..count-1`` of the env that ``env_kwargs`` describes.

    A share ``consult_share`` of them consult the Reasoning agent: on a random non-empty set of
    steps (``style="subset"``), or on every step from a random one on, then once more until the
    agent says all steps are written (``style="until_done"``; see the module docstring). The others solve alone: half of them under the consult instructions (so asking is
    a choice, not a reflex) and half without (as in evaluation, where consults are off).

    Args:
        env_kwargs: keyword arguments of ``env_id`` (level, split, budgets).
        count: number of demonstrations (``aipo/Arithmetic-v0`` is made with ``size=count``;
            other envs must have at least ``count`` problems).
        consult_share: fraction of consult demonstrations, in ``[0, 1]``.
        seed: seeds which demonstrations consult, and on which steps.
        style: ``"subset"`` or ``"until_done"``.
        env_id: an aipo env whose problems have reference ``steps`` (``aipo/Arithmetic-v0``,
            ``aipo/ArithmeticRule-v0``).
    """
    if not 0.0 <= consult_share <= 1.0:
        raise ValueError(f"consult_share must be in [0, 1], got {consult_share}")
    if style not in {"subset", "until_done"}:
        raise ValueError(f"style must be 'subset' or 'until_done', got {style!r}")
    settings = {"size": count, **env_kwargs} if env_id == ARITHMETIC else dict(env_kwargs)
    with_agents = gym.make(env_id, **{**settings, "consult": "agents"})
    alone = gym.make(env_id, **{**settings, "consult": "off"})
    rng = random.Random(seed)
    records = []
    for index in range(count):
        if rng.random() < consult_share:
            steps = len(with_agents.unwrapped.task.problem(index).steps)
            if style == "until_done":
                first = rng.randint(1, steps)
                records.append(demonstrate(with_agents, index, range(first, steps + 1), confirm=True))
                continue
            asked = [number for number in range(1, steps + 1) if rng.random() < 0.5] or [
                rng.randint(1, steps)
            ]
            records.append(demonstrate(with_agents, index, asked))
        else:
            records.append(demonstrate(with_agents if rng.random() < 0.5 else alone, index))
    with_agents.close()
    alone.close()
    return records
