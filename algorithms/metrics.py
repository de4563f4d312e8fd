"""What a batch of episodes did, as ``rollout/`` metrics."""

from __future__ import annotations

from collections import Counter

import torch

from aipo_env.episode import EpisodeRecord
from algorithms.advantages import zero_variance_fraction
from algorithms.batch import EpisodeBatch


def rollout_metrics(
    batch: EpisodeBatch, guided_per_group: int = 0, reference_per_group: int = 0
) -> dict[str, float]:
    """Reward, accuracy, consults per agent, zero-variance groups and token counts of ``batch``.

    ``rollout/sampled_accuracy`` is the accuracy of the episodes the policy played, leaving out
    the last ``reference_per_group`` of each group (reference solutions, see
    :mod:`algorithms.rollout`); without them it equals ``rollout/accuracy``.
    ``rollout/consult_rate`` is the fraction of episodes with at least one answered consult
    (guided episodes included); with ``guided_per_group`` > 0 (the first episodes of each group
    open with a scripted consult), ``rollout/unguided_consult_rate`` is that fraction among the
    other sampled episodes: how often the policy chooses to consult by itself;
    ``rollout/consults/AGENT`` the mean number of answered consults of that agent per episode;
    ``rollout/unaligned_agent_segments`` the helper segments per episode whose reported log-probs
    could not be placed on the policy's tokens (they learned with ``pi_agent = 1``).

    ``rollout/agent_failures`` is a count, not a mean: the consults of the whole batch whose agent
    failed (timed out, unreachable, an error status, an unusable reply); and
    ``rollout/agent_failures/KIND`` those of each kind that occurred
    (:func:`aipo_env.agents.base.failure_kind`).
    """
    records = batch.records
    count = max(len(records), 1)
    positions = _positions_in_group(batch.group_ids.tolist())
    sampled = [
        record
        for record, (rank, size) in zip(records, positions, strict=True)
        if rank < size - reference_per_group
    ]
    metrics = {
        "rollout/reward": float(batch.rewards.mean()),
        "rollout/accuracy": sum(record.correct for record in records) / count,
        "rollout/sampled_accuracy": sum(record.correct for record in sampled) / max(len(sampled), 1),
        "rollout/consult_rate": sum(map(_consulted, records)) / count,
        "rollout/unanswered_consults": sum(record.unanswered_consults for record in records) / count,
        "rollout/invalid_actions": sum(record.invalid_actions for record in records) / count,
        "rollout/turns": sum(sum(s.source == "policy" for s in record.segments) for record in records)
        / count,
        "rollout/zero_variance_groups": zero_variance_fraction(batch.rewards, batch.group_ids),
        "rollout/policy_tokens": float(batch.policy_mask.sum(dim=1).float().mean()),
        "rollout/agent_tokens": float(batch.agent_mask.sum(dim=1).float().mean()),
        "rollout/episode_tokens": float(batch.attention_mask.sum(dim=1).float().mean()),
    }
    if batch.unaligned_agent_segments is not None:
        metrics["rollout/unaligned_agent_segments"] = float(batch.unaligned_agent_segments.sum()) / count
    if guided_per_group:
        unguided = [
            record
            for record, (rank, size) in zip(records, positions, strict=True)
            if guided_per_group <= rank < size - reference_per_group
        ]
        metrics["rollout/unguided_consult_rate"] = sum(map(_consulted, unguided)) / max(len(unguided), 1)
    metrics["rollout/agent_failures"] = float(sum(record.agent_failures for record in records))
    kinds: Counter[str] = Counter()
    for record in records:
        kinds.update(record.agent_failure_kinds)
    for kind, failures in sorted(kinds.items()):
        metrics[f"rollout/agent_failures/{kind}"] = float(failures)
    agents = sorted({agent for record in records for agent in record.consults})
    for agent in agents:
        metrics[f"rollout/consults/{agent}"] = (
            sum(record.consults.get(agent, 0) for record in records) / count
        )
    return metrics


def logprob_gap(
    behaviour: torch.Tensor, learner: torch.Tensor, policy_mask: torch.Tensor
) -> dict[str, float]:
    """How far the sampler's log-probs are from the learner's, on the policy tokens it sampled.

        gap_t = | log pi_behaviour(x_t) - log pi_theta(x_t) |     over policy tokens t with a known
                                                                   behaviour log-prob (not nan)

    ``rollout/logprob_gap_max`` and ``rollout/logprob_gap_mean`` are its max and mean. Taken before
    the step's first update, both policies should hold the same weights, so the gap measures the
    sampler's numerics and any lag in its weights (a rollout engine not synced, or synced wrongly):
    about 1e-6 in float32 when they agree, far more when they do not. Both are 0 when no token counts.

    Args:
        behaviour: ``[B, T]`` the sampler's log-probs (``EpisodeBatch.behaviour_logprobs``).
        learner: ``[B, T']`` the learner's log-probs of the same tokens (``T' <= T`` columns used).
        policy_mask: ``[B, T]`` which tokens the policy sampled.
    """
    width = learner.shape[1]
    behaviour, mask = behaviour[:, :width].float(), policy_mask[:, :width]
    counted = mask & ~torch.isnan(behaviour)
    gaps = (behaviour - learner.float()).abs()[counted]
    if gaps.numel() == 0:
        return {"rollout/logprob_gap_max": 0.0, "rollout/logprob_gap_mean": 0.0}
    return {"rollout/logprob_gap_max": float(gaps.max()), "rollout/logprob_gap_mean": float(gaps.mean())}


def no_signal_warning(metrics: dict[str, float], group_size: int) -> str | None:
    """The warning for a step whose every group got equal rewards (so every advantage is 0), else None.

    Such a step changes nothing but the optimizer's moments; the likely cause follows from the
    mean reward.
    """
    if metrics.get("rollout/zero_variance_groups", 0.0) < 1.0:
        return None
    warning = "no learning signal: every group's rewards are equal, so every advantage is 0"
    reward = metrics.get("rollout/reward", 0.0)
    if group_size == 1:
        return f"{warning}; rollout.group_size=1 leaves nothing to compare: use group_size >= 2"
    if reward <= 0.0:
        return (
            f"{warning}; the model likely never solves the problems: start from a warm-up / SFT "
            "checkpoint (model.name_or_path), or use easier problems"
        )
    return f"{warning} (mean reward {reward:.3g}); if every episode is solved, use harder problems"


def agent_failure_warning(metrics: dict[str, float]) -> str | None:
    """One line on the step's failed consults, totals by kind; ``None`` when none failed."""
    failed = metrics.get("rollout/agent_failures", 0.0)
    if not failed:
        return None
    prefix = "rollout/agent_failures/"
    kinds = ", ".join(
        f"{name[len(prefix) :]}: {value:g}"
        for name, value in sorted(metrics.items())
        if name.startswith(prefix)
    )
    return f"{failed:g} consults failed ({kinds}); those episodes went on without a reply"


def _positions_in_group(group_ids: list[int]) -> list[tuple[int, int]]:
    """Per episode, its rank among its group's episodes (in batch order) and the group's size."""
    sizes, ranks = Counter(group_ids), Counter()
    positions = []
    for group in group_ids:
        positions.append((ranks[group], sizes[group]))
        ranks[group] += 1
    return positions


def _consulted(record: EpisodeRecord) -> bool:
    """Whether the episode got at least one consult answered."""
    return sum(record.consults.values()) > 0
