r"""The AIPO objective: GRPO on the policy's own tokens plus an off-policy term on helper tokens.

An episode ``i`` is a transcript whose tokens come from the prompt, from the policy (set
``P_i``) and from helper replies spliced in after a consult (set ``H_i``). Every episode has one
group-relative advantage ``A_i`` (:mod:`algorithms.advantages`). For a token ``x_t`` with
context ``s_t``::

    r_t   = pi_theta(x_t | s_t) / pi_old(x_t | s_t)        policy tokens: on-policy ratio
    rho_t = pi_theta(x_t | s_t) / pi_agent(x_t | s_t)      helper tokens: off-policy ratio

``pi_old`` is the policy that sampled the episode; ``pi_agent`` is the helper's probability of its
token, taken as 1 unless the helper reports token log-probs (a rule-based helper has no
distribution). An LLM helper's log-probs are for its own tokens; :mod:`algorithms.helper_logprobs`
moves them onto the policy's tokens by character span. The loss minimised is

    L(theta) = 1/N * sum_i [ sum_{t in P_i} l^pol_t  +  lambda * w_i * sum_{t in H_i} l^agent_t ]
               + beta * KL_k3(pi_theta || pi_ref) - alpha * entropy     (policy tokens)

    l^pol_t = -min(r_t A_i, clip(r_t, 1 - eps_low, 1 + eps_high) A_i)      (PPO / DAPO)

and ``l^agent_t`` by ``agent_mode``:

=============  ================================================  ===========================================
mode           l^agent_t                                         gradient of l^agent_t
=============  ================================================  ===========================================
``mask``       0 (helper tokens excluded: GRPO with consults)    0
``raw``        -rho_t A_i                                        -A_i rho_t grad log pi_theta
``luffy``      -f(rho_t) A_i,  f(x) = x / (x + gamma)            -A_i gamma rho_t / (rho_t + gamma)^2 grad log pi_theta
``aipo``       -sg[clip(rho_t, c_min, c_max)] A_i log pi_theta   -A_i clip(rho_t, c_min, c_max) grad log pi_theta
``own_voice``  0 here; ``aipo``'s term in the own-voice           -A_i clip(rho~_t, c_min, c_max) grad log pi~_theta
               transcript, plus its continuation (below)         (on x~_i; below)
=============  ================================================  ===========================================

``sg`` stops the gradient. Why ``aipo``: under ``raw`` the coefficient of ``grad log pi_theta`` is
``rho_t``, which vanishes for exactly the helper tokens the policy finds unlikely (the ones it
has to learn) and explodes when ``pi_agent`` is small; LUFFY's shaping ``f`` (Yan et al., 2025)
lifts small probabilities but still tends to zero. The detached clipped coefficient keeps every
helper token's gradient at least ``c_min`` and at most ``c_max`` times the supervised one.

``w_i = 1[A_i > 0]`` with ``agent_positive_only`` (default): helper text is imitated only in
episodes that did better than their group, never pushed down because the policy failed
afterwards; otherwise ``w_i = 1``. ``N`` is the number of counted tokens (policy tokens plus
weighted helper tokens) for ``aggregation="token"``; with ``"sequence"`` each episode's sum is
divided by its own count and ``N`` is the number of episodes.

Departures from GRPO (Shao et al., 2024), each a switch in :class:`~algorithms.config.LossConfig`:
token-level aggregation and clip-higher (DAPO), optional Dr. GRPO advantages (no std), no KL by
default, and the helper-token term above (``agent_mode="mask"`` gives plain GRPO).
The paper (arXiv 2605.08401) gives no formulas in the material we have; this is our objective.

**Own voice** (``agent_mode="own_voice"``). Under ``aipo`` the key tokens of a helper reply are
learned tied to the feedback context: they rise in a reply far more than written alone
(docs/experiments.md). Guide (Nath et al., 2025, arXiv 2506.13923) trains hint-guided tokens
toward the context *without* the hint. Here the helper's reply is learned in the transcript
``x~_i`` in which the policy wrote it itself: the consult request and the ``<feedback>`` wrapper
removed, the reply where the policy would have written it, then the policy's continuation
(:mod:`algorithms.own_voice` builds it and says where tokens are re-encoded). With ``s~_t`` the
context of token ``x~_t`` in ``x~_i``, ``H~_i`` its helper content, ``C~_i`` its continuation (the
policy's tokens after the first helper content) and ``x_o(t)`` the same continuation token in
``x_i``::

    pi~_theta(x~_t) = pi_theta(x~_t | s~_t)
    rho~_t = pi~_theta(x~_t) / pi_agent(x~_t)               helper content (pi_agent as above)
    r~_t   = pi~_theta(x~_t) / pi_old(x_o(t) | s_o(t))       continuation: off-policy ratio

    L(theta) = 1/N * sum_i [ sum_{t in P_i} l^pol_t
                             + lambda * w_i * sum_{t in H~_i} l~^agent_t + sum_{t in C~_i} l~^cont_t ]
               + beta * KL_k3 - alpha * entropy                 (policy tokens of x_i only)

    l~^agent_t = -sg[clip(rho~_t, c_min, c_max)] A_i log pi~_theta(x~_t)
    l~^cont_t  = -min(r~_t A_i, clip(r~_t, 1 - eps_low, 1 + eps_high) A_i)

    grad l~^agent_t = -A_i clip(rho~_t, c_min, c_max) grad log pi~_theta(x~_t)
    grad l~^cont_t  = -A_i r~_t grad log pi~_theta(x~_t)   where the clip is inactive, else 0

``N`` counts the policy tokens of ``x_i``, the learned helper content and the continuation tokens of
``x~_i`` (``"sequence"``: both transcripts of an episode share its count). How this departs from
``aipo``:

* Helper content is learned in ``x~_i``, not in ``x_i`` (where helper tokens are context, as under
  ``mask``); its coefficient is clipped as ``aipo``'s, but from ``pi_theta`` in ``x~_i``. Its text
  is re-encoded as the policy encodes text, so ``rho~_t`` is over those tokens (the same ones for a
  byte-level tokenizer); a helper's log-probs do not depend on the policy's context and are placed
  on them by character span. Own tokens cut by the removed request are re-encoded too and stay
  context: they have no behaviour probability.
* The continuation is learned twice: on-policy in ``x_i`` (``l^pol``) and in ``x~_i``
  (``l~^cont``), on every sign of ``A_i`` as policy tokens are (``w_i`` is for helper content).
* ``r~_t`` is off-policy: its denominator is the behaviour policy in the feedback context, its
  numerator ``pi_theta`` in a context no policy sampled, as Guide's ratio. It is not 1 at
  ``theta = theta_old``; PPO's clip then removes the gradient of tokens already far in the
  advantage's direction (``r~ > 1 + eps_high`` with ``A > 0``, ``r~ < 1 - eps_low`` with
  ``A < 0``), and it vanishes where ``x~_i`` makes a token of a good episode unlikely
  (``r~ -> 0``) and is not bounded for a bad one (``A < 0``, ``r~ > 1 + eps_high``), as in PPO.
* ``A_i`` is the reward of the episode as played, with the helper: ``x~_i`` is never played
  or scored. The consult request is learned in ``x_i`` only (``x~_i`` has none).
* No KL or entropy term on ``x~_i``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from algorithms.config import AGENT_MODES, AgentMode, LossConfig
from algorithms.losses import aggregate, clip_fractions, clipped_surrogate, kl_k3

_LOSS_DEFAULTS = LossConfig()


@dataclass(frozen=True)
class HelperSettings:
    """The helper term's constants: ``c_min``, ``c_max`` of ``aipo`` and LUFFY's ``gamma`` (their
    defaults are :class:`~algorithms.config.LossConfig`'s, the one place they are written)."""

    clip_min: float = _LOSS_DEFAULTS.agent_clip_min
    clip_max: float = _LOSS_DEFAULTS.agent_clip_max
    gamma: float = _LOSS_DEFAULTS.luffy_gamma


@dataclass(frozen=True)
class HelperTerm:
    """One ``agent_mode``: its per-token loss ``l^agent_t`` and the detached coefficient ``c_t``
    of its gradient ``-A c_t grad log pi_theta`` (the module docstring's table).

    Attributes:
        loss: ``(logprobs, agent_logprobs, advantage [B, 1], settings) -> [B, T]``.
        coefficient: ``(rho [B, T] detached, settings) -> [B, T]``.
        learns: whether helper tokens are learned at all (``mask`` does not).
        clips: whether the coefficient is clipped (``aipo``), for the clipped-share diagnostic.
        own_voice: whether they are learned in the own-voice transcript ``x~_i`` instead of ``x_i``.
    """

    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, HelperSettings], torch.Tensor]
    coefficient: Callable[[torch.Tensor, HelperSettings], torch.Tensor]
    learns: bool = True
    clips: bool = False
    own_voice: bool = False


def _ratio(logprobs: torch.Tensor, agent_logprobs: torch.Tensor) -> torch.Tensor:
    return torch.exp(logprobs - agent_logprobs)


def _luffy_shape(rho: torch.Tensor, gamma: float) -> torch.Tensor:
    return rho / (rho + gamma)


def _clipped_loss(
    logprobs: torch.Tensor, agent: torch.Tensor, advantage: torch.Tensor, s: HelperSettings
) -> torch.Tensor:
    return -torch.clamp(_ratio(logprobs.detach(), agent), s.clip_min, s.clip_max) * advantage * logprobs


def _clipped_coefficient(rho: torch.Tensor, s: HelperSettings) -> torch.Tensor:
    return torch.clamp(rho, s.clip_min, s.clip_max)


HELPER_TERMS: dict[str, HelperTerm] = {
    "mask": HelperTerm(
        loss=lambda logprobs, agent, advantage, s: torch.zeros_like(logprobs),
        coefficient=lambda rho, s: torch.zeros_like(rho),
        learns=False,
    ),
    "raw": HelperTerm(
        loss=lambda logprobs, agent, advantage, s: -_ratio(logprobs, agent) * advantage,
        coefficient=lambda rho, s: rho,
    ),
    "luffy": HelperTerm(
        loss=lambda logprobs, agent, advantage, s: (
            -_luffy_shape(_ratio(logprobs, agent), s.gamma) * advantage
        ),
        coefficient=lambda rho, s: s.gamma * rho / (rho + s.gamma) ** 2,
    ),
    "aipo": HelperTerm(loss=_clipped_loss, coefficient=_clipped_coefficient, clips=True),
    "own_voice": HelperTerm(loss=_clipped_loss, coefficient=_clipped_coefficient, clips=True, own_voice=True),
}


def helper_term(mode: AgentMode | str) -> HelperTerm:
    """The :class:`HelperTerm` of ``mode``.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in HELPER_TERMS:
        raise ValueError(f"agent mode must be one of {', '.join(AGENT_MODES)}, got {mode!r}")
    return HELPER_TERMS[mode]


def agent_coefficient(
    logprobs: torch.Tensor,
    agent_logprobs: torch.Tensor,
    mode: AgentMode,
    *,
    clip_min: float = HelperSettings.clip_min,
    clip_max: float = HelperSettings.clip_max,
    gamma: float = HelperSettings.gamma,
) -> torch.Tensor:
    """The (detached) factor ``c_t`` in ``grad l^agent_t = -A c_t grad log pi_theta`` (module docstring).

    Useful to inspect how strongly each helper token is learned; ``mask`` gives zeros.
    """
    term = helper_term(mode)
    return term.coefficient(
        _ratio(logprobs.detach(), agent_logprobs), HelperSettings(clip_min, clip_max, gamma)
    )


def agent_token_loss(
    logprobs: torch.Tensor,
    agent_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mode: AgentMode,
    *,
    clip_min: float = HelperSettings.clip_min,
    clip_max: float = HelperSettings.clip_max,
    gamma: float = HelperSettings.gamma,
) -> torch.Tensor:
    """Per-token helper loss ``l^agent_t`` ``[B, T]`` of one mode (module docstring); not masked.

    Args:
        logprobs: ``[B, T]`` ``log pi_theta`` (with gradient; for ``own_voice``, in ``x~_i``).
        agent_logprobs: ``[B, T]`` ``log pi_agent`` (0 where the helper reports nothing).
        advantages: ``[B]`` episode advantages.
        mode: ``mask``, ``raw``, ``luffy``, ``aipo`` or ``own_voice``.
        clip_min, clip_max: ``c_min``, ``c_max`` of ``aipo``.
        gamma: LUFFY's ``gamma``.
    """
    term = helper_term(mode)
    return term.loss(
        logprobs, agent_logprobs, advantages.unsqueeze(-1), HelperSettings(clip_min, clip_max, gamma)
    )


@dataclass
class LossInputs:
    """Per-token tensors of one micro-batch, ``[B, T]`` unless noted.

    Attributes:
        logprobs: ``log pi_theta`` (with gradient).
        old_logprobs: behaviour log-probs of policy tokens.
        agent_logprobs: ``log pi_agent`` of helper tokens.
        advantages: ``[B]``.
        policy_mask: policy tokens.
        agent_mask: helper tokens.
        ref_logprobs: ``log pi_ref``, needed when ``kl_coef > 0``.
        entropy: per-token entropy, needed when ``entropy_coef > 0``.
    """

    logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    agent_logprobs: torch.Tensor
    advantages: torch.Tensor
    policy_mask: torch.Tensor
    agent_mask: torch.Tensor
    ref_logprobs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None


def helper_weights(
    agent_mask: torch.Tensor, advantages: torch.Tensor, config: LossConfig, *, own_voice: bool = False
) -> torch.Tensor:
    """``lambda * w_i`` on helper tokens and 0 elsewhere, ``[B, T]``.

    0 everywhere in ``mask`` mode, and where the mode does not learn them: ``own_voice=True``
    says ``agent_mask`` is the helper content of own-voice transcripts ``x~_i``, which only
    ``agent_mode="own_voice"`` learns (and it learns no helper token of ``x_i``).
    """
    term = helper_term(config.agent_mode)
    if not term.learns or term.own_voice != own_voice:
        return torch.zeros_like(agent_mask, dtype=torch.float32)
    weights = agent_mask.float() * config.agent_weight
    if config.agent_positive_only:
        weights = weights * (advantages > 0).float().unsqueeze(-1)
    return weights


def counted_tokens(
    policy_mask: torch.Tensor,
    agent_mask: torch.Tensor,
    advantages: torch.Tensor,
    config: LossConfig,
    *,
    own_voice: bool = False,
) -> torch.Tensor:
    """Per-token weight in the normaliser ``N``: 1 on policy tokens, 1 on helper tokens that are learned.

    With ``own_voice=True`` the masks are those of own-voice transcripts (continuation, helper content).
    """
    learned = helper_weights(agent_mask, advantages, config, own_voice=own_voice) > 0
    return (policy_mask | learned).float()


def zero_gradient_rows(advantages: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """``[B]``: episodes whose terms of ``L(theta)`` have exactly zero gradient.

    Without KL and entropy terms (``beta = alpha = 0``) every term an episode adds to ``L`` is
    proportional to its advantage: ``l^pol_t = -min(r_t A_i, clip(r_t) A_i)``, every
    ``l^agent_t`` in the table above and own voice's ``l~^agent_t``, ``l~^cont_t`` carry the factor ``A_i`` (with ``agent_positive_only`` the
    weight ``w_i = 1[A_i > 0]`` is 0 as well). So ``A_i = 0`` gives ``grad_theta = 0`` and a learner
    may skip the episode's forward and backward. Its tokens still count in ``N`` (see
    :func:`counted_tokens`), which is why the skip leaves the update unchanged. With ``beta > 0`` or
    ``alpha > 0`` no episode qualifies.
    """
    if config.kl_coef > 0 or config.entropy_coef > 0:
        return torch.zeros_like(advantages, dtype=torch.bool)
    return advantages == 0


def objective(
    inputs: LossInputs,
    config: LossConfig,
    *,
    own_voice: LossInputs | None = None,
    total_tokens: float | None = None,
    total_sequences: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss ``L(theta)`` of the module docstring on one micro-batch, and diagnostics.

    Args:
        inputs: the micro-batch's tensors.
        config: clip ranges, aggregation, coefficients and the helper mode.
        own_voice: ``agent_mode="own_voice"`` only: the same episodes' own-voice transcripts
            ``x~_i`` (rows as in ``inputs``, an empty row where an episode has none), with
            ``policy_mask`` its continuation, ``agent_mask`` its helper content, ``logprobs``
            ``log pi_theta`` in ``x~_i`` and ``old_logprobs`` the continuation's behaviour
            log-probs in ``x_i``.
        total_tokens, total_sequences: normalisers of the whole minibatch (see
            :func:`~algorithms.losses.aggregate`) when gradients are accumulated over micro-batches.

    Returns:
        The scalar loss and floats for logging: ``policy_loss``, ``agent_loss``, ``clip_low``,
        ``clip_high`` (clip fractions), ``agent_coef`` (mean helper coefficient),
        ``agent_clipped`` (aipo: fraction of helper tokens whose coefficient is clipped),
        ``agent_at_min`` (aipo: fraction of the learned helper tokens whose coefficient sits at
        ``c_min``, ``rho_t < c_min``: tokens the policy finds unlikely; absent in modes that do not
        clip and when no helper token is learned), ``agent_learned`` (the number of helper tokens learned:
        weight ``lambda w_i > 0`` and ``A_i != 0``; a count, not a mean), ``kl``, ``entropy``,
        ``ratio`` (mean ``r_t``). Under ``own_voice`` the ``agent_*`` values are those of the helper
        content of ``x~_i``, and ``own_voice_ratio`` (mean ``r~_t``), ``own_voice_policy_loss`` and
        ``own_voice_clipped`` (share of continuation tokens whose gradient the clip removes) are added.

    Raises:
        ValueError: a KL or entropy term without its inputs; ``own_voice`` missing in that mode.
    """
    if config.kl_coef > 0 and inputs.ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs (log-probs under the reference model)")
    if config.entropy_coef > 0 and inputs.entropy is None:
        raise ValueError("entropy_coef > 0 needs the per-token entropy")
    term = helper_term(config.agent_mode)  # picked once: its loss, coefficient and flags below
    if term.own_voice and own_voice is None:
        raise ValueError("agent_mode='own_voice' needs the own-voice transcripts' inputs (own_voice=...)")
    per_token, counted, stats = _transcript_terms(inputs, config, term)
    policy = inputs.policy_mask
    if config.kl_coef > 0:
        kl = torch.where(policy, kl_k3(inputs.logprobs, inputs.ref_logprobs), 0.0)
        per_token = per_token + config.kl_coef * kl
        stats["kl"] = float(_masked_mean(kl.detach(), policy))
    if inputs.entropy is not None:
        stats["entropy"] = float(_masked_mean(inputs.entropy.detach(), policy))
        if config.entropy_coef > 0:
            per_token = per_token - config.entropy_coef * torch.where(policy, inputs.entropy, 0.0)
    if term.own_voice and own_voice is not None:
        voiced, voiced_counted, voiced_stats = _transcript_terms(own_voice, config, term, own_voice=True)
        # the two transcripts of an episode are one row of the aggregate: "sequence" shares their count
        per_token, counted = (
            torch.cat([per_token, voiced], dim=1),
            torch.cat([counted, voiced_counted], dim=1),
        )
        for name in [name for name in stats if name.startswith("agent_")]:
            del stats[name]
        stats.update({name: value for name, value in voiced_stats.items() if name.startswith("agent_")})
        stats.update(
            own_voice_ratio=voiced_stats["ratio"],
            own_voice_policy_loss=voiced_stats["policy_loss"],
            own_voice_clipped=voiced_stats["clip_low"] + voiced_stats["clip_high"],
        )
    loss = aggregate(
        per_token, counted, config.aggregation, total_tokens=total_tokens, total_sequences=total_sequences
    )
    return loss, stats


def _transcript_terms(
    inputs: LossInputs, config: LossConfig, term: HelperTerm, *, own_voice: bool = False
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One transcript's ``l^pol_t`` and weighted ``l^agent_t`` per token ``[B, T]``, its counted
    tokens, and its diagnostics (:func:`objective`); ``own_voice``: the transcript is ``x~_i``."""
    policy = inputs.policy_mask
    # Padding and non-policy positions can hold nan behaviour log-probs; keep them out of the graph.
    old = torch.where(policy, inputs.old_logprobs, inputs.logprobs.detach())
    policy_loss, ratio = clipped_surrogate(
        inputs.logprobs, old, inputs.advantages, config.clip_low, config.clip_high
    )
    settings = HelperSettings(config.agent_clip_min, config.agent_clip_max, config.luffy_gamma)
    agent_loss = term.loss(inputs.logprobs, inputs.agent_logprobs, inputs.advantages.unsqueeze(-1), settings)
    helper = helper_weights(inputs.agent_mask, inputs.advantages, config, own_voice=own_voice)
    per_token = torch.where(policy, policy_loss, 0.0) + torch.where(helper > 0, helper * agent_loss, 0.0)
    counted = counted_tokens(policy, inputs.agent_mask, inputs.advantages, config, own_voice=own_voice)
    low, high = clip_fractions(ratio.detach(), inputs.advantages, policy, config.clip_low, config.clip_high)
    rho = _ratio(inputs.logprobs.detach(), inputs.agent_logprobs)
    coefficient = term.coefficient(rho, settings)
    learned = helper > 0
    stats: dict[str, float] = {
        "policy_loss": float(_masked_mean(policy_loss.detach(), policy)),
        "agent_loss": float(_masked_mean(agent_loss.detach(), learned)),
        "clip_low": low,
        "clip_high": high,
        "ratio": float(_masked_mean(ratio.detach(), policy)),
        "agent_coef": float(_masked_mean(coefficient, learned)),
        "agent_clipped": float(
            _masked_mean(((rho < config.agent_clip_min) | (rho > config.agent_clip_max)).float(), learned)
        )
        if term.clips
        else 0.0,
        "agent_learned": float((learned & (inputs.advantages != 0).unsqueeze(-1)).sum()),
    }
    if term.clips and bool(learned.any()):  # a share of nothing, or of an unclipped mode, is not 0
        stats["agent_at_min"] = float(_masked_mean((rho < config.agent_clip_min).float(), learned))
    return per_token, counted, stats


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    if count == 0:
        return values.new_tensor(0.0)
    return torch.where(mask, values, 0.0).sum() / count
