"""TRL's ``GRPOTrainer`` on an aipo env with consults, through TRL's ``rollout_func`` hook.

:class:`AipoRollout` is the ``rollout_func``: for the prompts TRL hands it (one per completion, each
problem ``num_generations`` times in a row), it plays aipo episodes with the trainer's own model
(:func:`algorithms.rollout.rollout`: consults answered by the env's agents, token ids exact across
turns) and returns them the way TRL takes them:

    prompt_ids      the episode's first segment (the problem), as the policy encoded it
    completion_ids  every later token: sampled turns, helper replies, notes, in order
    logprobs        the behaviour log-prob of each sampled token; 0 for tokens not sampled
    env_mask        1 for sampled tokens, 0 for helper replies, notes and written consults
    env_reward      the episode's return from the env (score - consult costs - penalties)
    consults, correct

TRL multiplies its completion mask by ``env_mask`` (it calls it ``tool_mask``), so the loss, the
token count it is normalised by, and the logged completion lengths cover the sampled tokens only:
helper replies get no gradient. That is our GRPO (``loss.agent_mode: mask``); AIPO's off-policy
term on helper tokens has no counterpart in TRL. The reward is :func:`env_reward`, which passes
``env_reward`` through, so the group advantages TRL computes are those of the env's returns.

    rollout = AipoRollout("aipo/Arithmetic-v0", {"level": 1, "max_turns": 3}, problems=range(256))
    trainer = GRPOTrainer(model, reward_funcs=env_reward, args=GRPOConfig(...),
                          train_dataset=rollout.dataset(), processing_class=tokenizer,
                          rollout_func=rollout)

Departures from TRL's own generation: a turn is at most ``max_new_tokens`` tokens (default TRL's
``max_completion_length``) and an episode at most the env's ``max_turns`` turns, so a completion can
be longer than ``max_completion_length``; sampling uses ``temperature``, ``top_k`` and ``top_p`` of
the trainer's config with :class:`~policies.HFPolicy` on the trainer's model (no vLLM).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym

from aipo_env.extras import MissingExtraError
from algorithms.batch import POLICY, TokenizedEpisode
from algorithms.envs import make_envs, shared_agents
from algorithms.rollout import Guide, rollout
from policies.hf import HFPolicy

logger = logging.getLogger("aipo.integrations.trl")


def _require_trl() -> None:
    try:
        import trl  # noqa: F401
    except ModuleNotFoundError as error:
        raise MissingExtraError('aipo.integrations.trl needs TRL: pip install "aipo[bench]"') from error


def env_reward(completions: list[Any], env_reward: list[float], **_: Any) -> list[float]:
    """The reward function to give ``GRPOTrainer``: each episode's return, as the env computed it."""
    return [float(reward) for reward in env_reward]


class AipoRollout:
    """A ``rollout_func`` for TRL's ``GRPOTrainer`` that plays aipo episodes with consults.

    Args:
        env_id: a registered aipo env id.
        env_kwargs: its keyword arguments (``max_turns``, ``agents``, ``consult_cost``, ...).
        problems: the dataset indices to train on (:meth:`dataset` writes one row per index;
            default: every problem of the env).
        max_new_tokens: tokens per turn (default: the trainer's ``max_completion_length``).
        chat_template: encode the problem with the tokenizer's chat template.
        protocol: ``"text"`` (``<consult>`` tags) or ``"tools"`` (tool calls in the chat template's
            format, ``docs/tool_calls.md``; needs ``chat_template=True``).
        guide: open the first ``guide.per_group`` episodes of each group with a written consult
            (context, masked out of the loss); the group is TRL's ``num_generations`` copies.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        problems: Iterable[int] | None = None,
        max_new_tokens: int | None = None,
        chat_template: bool = False,
        protocol: Literal["text", "tools"] = "text",
        guide: Guide | None = None,
    ) -> None:
        _require_trl()
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.problems = None if problems is None else [int(index) for index in problems]
        self.max_new_tokens, self.chat_template, self.protocol = max_new_tokens, chat_template, protocol
        self.guide = guide
        self._envs: list[gym.Env] = []
        self._policy: HFPolicy | None = None
        self._index: dict[str, int] = {}
        self.__name__ = "aipo_rollout"  # TRL names rollout functions in its logs

    def dataset(self) -> Any:
        """A ``datasets.Dataset`` with one row per problem: ``prompt`` (the env's first observation)
        and ``problem`` (its index); the rollout finds the problem from the prompt."""
        from datasets import Dataset

        env = gym.make(self.env_id, **{**self.env_kwargs, "protocol": self.protocol})
        if self.problems is None:
            self.problems = list(range(len(env.unwrapped.task)))
        rows = []
        for index in self.problems:
            prompt, _ = env.reset(options={"index": index})
            self._index.setdefault(prompt, index)
            rows.append({"prompt": prompt, "problem": index})
        env.close()
        return Dataset.from_list(rows)

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with ``trainer``'s model; return TRL's rollout fields."""
        if trainer.args.use_vllm:
            raise ValueError(
                "AipoRollout samples with the trainer's own model in process; set use_vllm=False"
            )
        if not self._index:
            self.dataset()
        unknown = [prompt for prompt in prompts if prompt not in self._index]
        if unknown:
            raise ValueError(
                f"{len(unknown)} prompts are not this AipoRollout's (first: {str(unknown[0])[:80]!r}); "
                "train on AipoRollout.dataset()"
            )
        policy = self.policy(trainer)
        group = _group_size(prompts, trainer.num_generations)
        problems = [self._index[prompt] for prompt in prompts[::group]]
        guide = self.guide if group > 1 else None
        episodes = rollout(policy, self.envs(policy, len(prompts)), problems, group, guide=guide)
        return trl_fields(episodes)

    def policy(self, trainer: Any) -> HFPolicy:
        """An :class:`~policies.HFPolicy` sampling from the trainer's current model (made once)."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        if self._policy is None or self._policy.model is not model:
            args = trainer.args
            self._policy = HFPolicy(
                model,
                trainer.processing_class,
                chat_template=self.chat_template,
                protocol=self.protocol,
                max_new_tokens=self.max_new_tokens or args.max_completion_length,
                temperature=args.temperature,
                top_k=args.top_k or 0,
                top_p=args.top_p,
            )
            self.close()  # a new policy's protocol renders the tool messages: new envs
        return self._policy

    def envs(self, policy: HFPolicy, count: int) -> list[gym.Env]:
        """At least ``count`` envs speaking ``policy``'s protocol (grown as needed, agents shared)."""
        if len(self._envs) < count:
            kwargs = {**self.env_kwargs, "protocol": policy.env_protocol}
            agents = shared_agents(self._envs)
            if agents is not None:  # the envs made before hold the agents (a model helper loads once)
                kwargs["agents"] = agents
            self._envs += make_envs(self.env_id, kwargs, count - len(self._envs))
        return self._envs

    def close(self) -> None:
        """Close the envs and their agents (helpers, sandboxes, scoring workers). Safe to call twice."""
        envs, self._envs = self._envs, []
        for env in envs:
            env.close()


def _group_size(prompts: Sequence[Any], generations: int) -> int:
    """``generations`` when the prompts come in runs of that many copies (TRL's sampler), else 1."""
    runs = len(prompts) % generations == 0 and all(
        prompts[start] == prompt
        for start in range(0, len(prompts), generations)
        for prompt in prompts[start : start + generations]
    )
    if not runs:
        logger.warning("the prompts do not come in groups of num_generations; no guided episodes this time")
    return generations if runs else 1


def trl_fields(episodes: Sequence[TokenizedEpisode]) -> dict[str, list[Any]]:
    """TRL's rollout fields of finished episodes (module docstring): the first segment is the prompt."""
    fields: dict[str, list[Any]] = {
        key: []
        for key in (
            "prompt_ids",
            "completion_ids",
            "logprobs",
            "env_mask",
            "env_reward",
            "consults",
            "correct",
        )
    }
    for episode in episodes:
        cut = episode.segment_spans[0][1]
        sampled = [source == POLICY for source in episode.sources[cut:]]
        behaviour = episode.behaviour_logprobs[cut:]
        fields["prompt_ids"].append(episode.token_ids[:cut])
        fields["completion_ids"].append(episode.token_ids[cut:])
        fields["logprobs"].append([lp if mine else 0.0 for lp, mine in zip(behaviour, sampled, strict=True)])
        fields["env_mask"].append([int(mine) for mine in sampled])
        fields["env_reward"].append(float(episode.record.reward))
        fields["consults"].append(sum(episode.record.consults.values()))
        fields["correct"].append(bool(episode.record.correct))
    return fields
