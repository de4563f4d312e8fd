"""Playing Idea3 episodes with two token policies, batched across episodes, tokenized for GRPO.

Each player keeps one token context per episode. It opens with ``policy.encode_prompt`` of the
problem; after each stage the tokens the player sampled are appended as they are, then every new
segment the env added to its transcript (the partner's text, the stage note) is appended with
``policy.encode_text``, segment by segment. At the end each player's episode is tokenized from
its :class:`~aipo_env.episode.EpisodeRecord` with :func:`algorithms.rollout.tokenize_episode`,
which rebuilds exactly that context: the partner's text has source ``agent`` (masked out of the
GRPO loss) and the stage notes source ``prompt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aipo_env.idea3 import PLAYERS, Idea3Env, Mode
from algorithms.batch import TokenizedEpisode
from algorithms.rollout import tokenize_episode
from policies.base import Action
from policies.hf import HFPolicy


@dataclass
class Interaction:
    """The episodes of one batch of Idea3 games.

    Attributes:
        episodes: per player, its tokenized episodes in env order (``group`` = problem position).
        share_scores: per player, the task's score of its shared idea in each episode.
        modes: per player, its mode in each episode.
    """

    episodes: tuple[list[TokenizedEpisode], list[TokenizedEpisode]]
    share_scores: tuple[list[float], list[float]]
    modes: tuple[list[Mode], list[Mode]]


def interact(
    policies: Sequence[HFPolicy],
    envs: Sequence[Idea3Env],
    problems: Sequence[int],
    group_size: int,
    modes: Sequence[dict[str, Mode]],
    *,
    greedy: bool = False,
) -> Interaction:
    """Play ``group_size`` Idea3 games of each problem; game ``p * group_size + g`` is copy ``g`` of problem ``p``.

    Args:
        policies: the two players' policies, ``player_0`` first.
        envs: at least ``len(problems) * group_size`` Idea3 envs.
        problems: task indices.
        group_size: games per problem (``G``); sample ``k`` of player 0 plays with sample ``k`` of player 1.
        modes: per problem, each player's mode (``{"player_0": "cooperate", ...}``).
        greedy: argmax decoding.
    """
    if len(policies) != 2 or len(modes) != len(problems) or group_size < 1:
        raise ValueError("interact needs two policies, one modes dict per problem and group_size >= 1")
    games = len(problems) * group_size
    if len(envs) < games:
        raise ValueError(f"{len(problems)} problems x {group_size} games need {games} envs, got {len(envs)}")
    contexts: dict[str, list[list[int]]] = {player: [] for player in PLAYERS}
    for slot in range(games):
        observations, _ = envs[slot].reset(
            options={"index": int(problems[slot // group_size]), "modes": modes[slot // group_size]}
        )
        for player, policy in zip(PLAYERS, policies, strict=True):
            contexts[player].append(policy.encode_prompt(observations[player]))
    turns: dict[str, list[list[Action]]] = {player: [[] for _ in range(games)] for player in PLAYERS}
    infos: list[dict] = [{} for _ in range(games)]
    for _stage in range(3):
        actions = {
            player: policy.generate(contexts[player], greedy=greedy)
            for player, policy in zip(PLAYERS, policies, strict=True)
        }
        for slot, env in enumerate(envs[:games]):
            seen = {player: len(env.segments[player]) for player in PLAYERS}
            _, _, _, _, infos[slot] = env.step({player: actions[player][slot].text for player in PLAYERS})
            for player, policy in zip(PLAYERS, policies, strict=True):
                action = actions[player][slot]
                turns[player][slot].append(action)
                written = env.segments[player][seen[player]]
                if written.text == action.text and action.token_ids is not None:
                    contexts[player][slot] += action.token_ids
                else:  # the env cut the turn: continue from the text as it stands
                    contexts[player][slot] += policy.encode_text(written.text)
                for segment in env.segments[player][seen[player] + 1 :]:
                    contexts[player][slot] += policy.encode_text(segment.text)
    episodes = tuple(
        [
            tokenize_episode(policy, infos[slot][player]["episode"], turns[player][slot], slot // group_size)
            for slot in range(games)
        ]
        for player, policy in zip(PLAYERS, policies, strict=True)
    )
    return Interaction(
        episodes=episodes,  # type: ignore[arg-type]
        share_scores=tuple([info[player]["share_score"] for info in infos] for player in PLAYERS),  # type: ignore[arg-type]
        modes=tuple([info[player]["mode"] for info in infos] for player in PLAYERS),  # type: ignore[arg-type]
    )
