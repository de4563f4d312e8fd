"""The GRPO / AIPO trainer: the loop (:meth:`Trainer.learn`) apart from the update (:meth:`Trainer.update`).

One training step:

1. draw ``P`` problems (a seeded permutation of the dataset, walked in order);
2. play ``G`` episodes of each (:func:`algorithms.rollout.collect`), consults answered;
3. group-relative advantages (:mod:`algorithms.advantages`);
4. ``epochs`` passes over the batch, each split into ``minibatches`` optimizer steps whose
   gradients accumulate over micro-batches of ``micro_batch_size`` episodes; the loss is
   :func:`algorithms.aipo.objective` (GRPO when ``loss.agent_mode="mask"``; with ``"own_voice"``
   each micro-batch's forward pass also runs the episodes' own-voice transcripts,
   :mod:`algorithms.own_voice`);
5. log metrics, checkpoint every ``save_every`` steps.

GRPO and AIPO differ only in ``loss.agent_mode``. Resuming from a checkpoint restores the
weights, optimizer, scheduler, random states and the position in the problem order, so a resumed
run matches an uninterrupted one exactly.

Under ``torchrun`` / ``accelerate launch`` the same loop is data-parallel: each rank plays its
share of the step's problems and learns on its episodes, with a global loss normaliser, so that
the gradient equals one process's on the whole batch (:mod:`algorithms.distributed` derives it).
Only rank 0 logs, shows progress and writes files.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import set_seed

import aipo_env  # noqa: F401  (registers the env ids)
from algorithms import setup
from algorithms.advantages import group_advantages
from algorithms.aipo import LossInputs, counted_tokens, helper_term, objective, zero_gradient_rows
from algorithms.batch import EpisodeBatch
from algorithms.checkpoint import (
    TrainerState,
    capture_rng,
    find_checkpoint,
    load_state,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
    save_model,
)
from algorithms.config import TrainConfig
from algorithms.distributed import (
    any_rank,
    barrier,
    full_model_state,
    gather_objects,
    gather_tensor,
    global_sums,
    gradient_sync,
    leave_process_group,
    load_optimizer_state,
    local_problems,
    loss_scale,
    optimizer_state,
    rank_rng_state,
    reduce_metrics,
    whole_weights,
)
from algorithms.forward import token_logprobs
from algorithms.metrics import agent_failure_warning, logprob_gap, no_signal_warning, rollout_metrics
from algorithms.models import save_merged
from algorithms.own_voice import VoicedBatch, voiced_batch
from algorithms.rollout import Guide, collect
from algorithms.rollout_server import WeightSyncError
from policies.hf import HFPolicy

logger = logging.getLogger("algorithms.trainer")

Callback = Callable[["Trainer", dict[str, float]], "bool | None"]


class Trainer:
    """Trains an :class:`~policies.HFPolicy` with GRPO or AIPO on an aipo env.

    Args:
        config: the run's configuration.
        policy: a policy to train instead of the one ``config.model`` describes; with
            ``resume_from`` its weights are replaced by the checkpoint's.
        callbacks: called after every step with ``(trainer, metrics)``; returning ``False``
            stops training (after a checkpoint).
    """

    def __init__(
        self, config: TrainConfig, *, policy: HFPolicy | None = None, callbacks: Sequence[Callback] = ()
    ) -> None:
        # the set-up's steps, in order (algorithms/setup.py)
        self.config, self.callbacks = config, list(callbacks)
        self.ranks, self.device = setup.join(config)
        checkpoint = find_checkpoint(config.output_dir, config.resume_from) if config.resume_from else None
        self.policy = setup.policy_of(config, self.device, policy, checkpoint)
        self.sampler, self.sampler_weights = setup.sampler_of(config, self.policy)
        self.model, self.reference = setup.models_of(config, self.policy, self.ranks, self.device)
        self.envs = setup.envs_of(config, self.policy, self.ranks.world_size)
        self.agents = setup.quiet_agents(self.envs)
        self.dataset_size = len(self.envs[0].unwrapped.task)
        self.parameters = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        self.optimizer, self.scheduler = setup.optimizer_of(config, self.parameters)
        self.step = self.data_epoch = self.data_position = 0
        self.warned_no_signal = False
        self.log = setup.run_log(config) if self.ranks.is_main else None
        if checkpoint is not None:
            self._restore(checkpoint)
            if self.sampler_weights is not None:  # a server may hold any weights: hand it ours
                self._sync_sampler(now=True)

    # -- the loop ------------------------------------------------------------------------------

    def learn(self) -> dict[str, float]:
        """Train until ``config.steps`` (or a callback says stop); returns the last step's metrics.

        Callbacks run on every rank with the same (all-reduced) metrics; any rank's stop stops all.
        """
        config, metrics = self.config, {}
        shown = config.progress and self.ranks.is_main
        bar = tqdm(total=config.steps, initial=self.step, desc="train", disable=not shown)
        try:
            while self.step < config.steps:
                metrics = self.train_step()
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['rollout/reward']:.3f}", loss=f"{metrics['losses/loss']:.4f}"
                )
                stop = any(callback(self, metrics) is False for callback in self.callbacks)
                stop = any_rank(stop, self.ranks, self.device)
                due = config.save_every and self.step % config.save_every == 0
                if due or stop or self.step == config.steps:
                    self.save()
                if stop:
                    break
            self._save_final()
        finally:
            bar.close()
            if self.log is not None:
                self.log.close()
        leave_process_group(self.ranks)
        return metrics

    def train_step(self) -> dict[str, float]:
        """Collect one batch, update on it, log; returns the step's metrics."""
        started = time.perf_counter()
        batch = self.collect()
        collected = time.perf_counter()
        metrics = self.update(batch)
        updated = time.perf_counter()
        self.step += 1
        settings = self.config.rollout
        metrics.update(rollout_metrics(batch, settings.guided_per_group, settings.reference_per_group))
        policy_tokens = float(batch.policy_mask.sum())
        all_tokens = float(batch.attention_mask.sum()) * self.config.optim.epochs
        metrics.update(
            {
                "perf/rollout_s": collected - started,
                "perf/update_s": updated - collected,
                "perf/generated_tokens_per_s": policy_tokens / max(collected - started, 1e-9),
                "perf/trained_tokens_per_s": all_tokens / max(updated - collected, 1e-9),
            }
        )
        if self.sampler_weights is not None:
            metrics.update(self._sync_sampler())
        metrics = reduce_metrics(metrics, self.ranks)
        if self.log is not None:
            self.log.log(self.step, metrics)
            self._warn_without_signal(metrics)
            self._warn_agent_failures(metrics)
        return metrics

    def _warn_without_signal(self, metrics: dict[str, float]) -> None:
        """Say once per run that a step had no learning signal, and why that is likely."""
        warning = (
            None if self.warned_no_signal else no_signal_warning(metrics, self.config.rollout.group_size)
        )
        if warning is not None:
            logger.warning("step %d: %s", self.step, warning)
            self.warned_no_signal = True

    def _warn_agent_failures(self, metrics: dict[str, float]) -> None:
        """One warning per step in which consults failed, with the totals and the last error."""
        warning = agent_failure_warning(metrics)
        if warning is None:
            return
        errors = [f"{name}: {agent.last_error}" for name, agent in self.agents.items() if agent.last_error]
        last = f"; last error of {'; '.join(errors)}" if errors else ""
        logger.warning("step %d: %s%s", self.step, warning, last)

    def collect(self) -> EpisodeBatch:
        """Play ``group_size`` episodes of each of this rank's share of the next ``problems_per_step`` problems."""
        problems = local_problems(self.next_problems(), self.ranks)
        settings = self.config.rollout
        guide = Guide(
            settings.guided_per_group,
            settings.guide_agent,
            settings.guide_query,
            references=settings.reference_per_group,
        )
        with self._autocast(), whole_weights(self.model):
            sampler = self.policy if self.sampler is None else self.sampler
            batch = collect(sampler, self.envs, problems, settings.group_size, guide=guide)
        if self.sampler is not None:
            self.sampler.sleep()  # a vLLM engine frees its KV cache during the update (sleep_mode)
        return batch

    def _sync_sampler(self, now: bool = False) -> dict[str, float]:
        """Hand the new weights to the rollout server or engine when due (or ``now``).

        A server's failed sync is retried next time; a colocated engine's stops the run.
        """
        assert self.sampler_weights is not None
        try:
            seconds = self.sampler_weights.after_step(0 if now else self.step, self.policy)
        except WeightSyncError as error:
            logger.warning(
                "%s; the server keeps sampling with older weights (the ratio corrects for it)", error
            )
            return {"perf/weight_sync_failed": 1.0}
        return {} if seconds is None else {"perf/weight_sync_s": seconds, "perf/weight_sync_failed": 0.0}

    def next_problems(self) -> list[int]:
        """The next problems of the seeded order; a new order is drawn after each pass."""
        wanted, problems = self.config.rollout.problems_per_step, []
        while len(problems) < wanted:
            order = np.random.default_rng([self.config.seed, self.data_epoch]).permutation(self.dataset_size)
            taken = order[self.data_position : self.data_position + wanted - len(problems)]
            problems += [int(index) for index in taken]
            self.data_position += len(taken)
            if self.data_position >= self.dataset_size:
                self.data_epoch, self.data_position = self.data_epoch + 1, 0
        return problems

    # -- the update ----------------------------------------------------------------------------

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """Optimizer steps on one batch of episodes; returns ``losses/`` and ``charts/`` metrics, and
        ``rollout/logprob_gap_*`` (:func:`algorithms.metrics.logprob_gap`, before the first step).

        In a distributed run ``batch`` is this rank's episodes; every minibatch's normaliser is
        summed over ranks and the loss scaled by ``W`` (see :mod:`algorithms.distributed`).

        Episodes with zero gradient (``optim.skip_zero_gradient_rows``) are not run; they still
        count in the normaliser, so the parameters come out the same. ``losses/loss`` is exact
        either way (those episodes add 0 to it); the other ``losses/`` metrics and
        ``charts/entropy`` are then means over the episodes that ran, and absent when none ran.
        ``charts/skipped_rows`` is the share skipped. ``charts/agent_tokens_learned`` counts the
        helper tokens learned in the step (each once, however many epochs).
        """
        config, optim = self.config, self.config.optim
        batch = batch.to(self.device)
        advantages = self._advantages(batch)
        old = batch.behaviour_logprobs
        own = self._logprobs_without_grad(self.policy.model, batch)  # the learner's, before any update
        if optim.recompute_behaviour_logprobs or bool((torch.isnan(old) & batch.policy_mask).any()):
            old = own
        reference = None if self.reference is None else self._logprobs_without_grad(self.reference, batch)
        voiced = self._own_voice(batch)
        totals: dict[str, float] = defaultdict(float)
        stat_weights: dict[str, float] = defaultdict(float)
        # helper tokens learned in the step: a sum over the first epoch's micro-batches, not a mean
        totals["charts/agent_tokens_learned"], stat_weights["charts/agent_tokens_learned"] = 0.0, 1.0
        skip = self._skipped_rows(advantages).cpu()
        updates = 0
        for epoch in range(optim.epochs):
            for rows in self._shuffled_rows(batch).chunk(optim.minibatches):
                counted = counted_tokens(
                    batch.policy_mask[rows], batch.agent_mask[rows], advantages[rows], config.loss
                ).sum()
                if voiced is not None:  # own voice: x~_i's counted tokens are in N too
                    counted = counted + counted_tokens(
                        voiced.policy_mask[rows], voiced.agent_mask[rows], advantages[rows], config.loss,
                        own_voice=True,
                    ).sum()  # fmt: skip
                tokens, sequences = global_sums([counted, len(rows)], self.ranks, self.device)
                self.optimizer.zero_grad(set_to_none=True)
                live = rows[~skip[rows]]  # skipped rows add 0 to the loss and its gradient
                micros = live.split(optim.micro_batch_size) if len(live) else ()
                totals["losses/loss"] += 0.0  # logged even when every episode is skipped
                for index, micro in enumerate(micros):
                    with gradient_sync(self.model, last=index == len(micros) - 1):
                        loss, stats = self._backward(
                            batch, micro, advantages, old, reference, tokens, sequences, voiced
                        )
                    totals["losses/loss"] += loss
                    totals["charts/agent_tokens_learned"] += stats.pop("losses/agent_learned") * (epoch == 0)
                    for name, value in stats.items():
                        totals[name] += value * len(micro) / len(live)
                        stat_weights[name] += len(micro) / len(live)
                if not micros:
                    # AdamW still steps on a zero gradient (its moments decay), as without the skip
                    for parameter in self.parameters:
                        parameter.grad = torch.zeros_like(parameter)
                norm = torch.nn.utils.clip_grad_norm_(self.parameters, optim.max_grad_norm or float("inf"))
                totals["charts/grad_norm"] += float(
                    norm.full_tensor() if hasattr(norm, "full_tensor") else norm
                )
                totals["charts/lr"] += self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                updates += 1
        metrics = {name: value / stat_weights.get(name, updates) for name, value in totals.items()}
        metrics["charts/advantage_abs"] = float(advantages.abs().mean())
        metrics["charts/skipped_rows"] = float(skip.float().mean())
        metrics.update(logprob_gap(batch.behaviour_logprobs, own, batch.policy_mask))
        return metrics

    def _skipped_rows(self, advantages: torch.Tensor) -> torch.Tensor:
        """``[B]`` episodes the update runs no forward or backward for (zero gradient; see the config)."""
        if not self.config.optim.skip_zero_gradient_rows or self.ranks.world_size > 1:
            # Under DDP / FSDP a rank left without rows would miss the gradient all-reduce.
            return torch.zeros_like(advantages, dtype=torch.bool)
        return zero_gradient_rows(advantages, self.config.loss)

    def _shuffled_rows(self, batch: EpisodeBatch) -> torch.Tensor:
        """The batch's rows in random order with each group's rows kept together.

        Micro-batches then hold whole groups, whose shared prompt :func:`token_logprobs` runs once.
        """
        groups, group_of_row = torch.unique(batch.group_ids.cpu(), return_inverse=True)
        rank_of_group = torch.empty(len(groups), dtype=torch.long)
        rank_of_group[torch.randperm(len(groups))] = torch.arange(len(groups))
        return torch.argsort(rank_of_group[group_of_row], stable=True)

    def _advantages(self, batch: EpisodeBatch) -> torch.Tensor:
        """Group advantages computed on the rewards of every rank (exact for ``scale="batch"`` too)."""
        ranks = self.ranks
        # group ids are per rank; interleave them so that no two ranks share one
        groups = gather_tensor(batch.group_ids * ranks.world_size + ranks.rank, ranks)
        rewards = gather_tensor(batch.rewards.float(), ranks)
        advantages = group_advantages(rewards, groups, scale=self.config.loss.advantage_scale)
        return advantages.view(ranks.world_size, -1)[ranks.rank] if ranks.grouped else advantages

    def _backward(
        self,
        batch: EpisodeBatch,
        micro: torch.Tensor,
        advantages: torch.Tensor,
        old: torch.Tensor,
        reference: torch.Tensor | None,
        total_tokens: float,
        total_sequences: float,
        voiced: VoicedBatch | None = None,
    ) -> tuple[float, dict[str, float]]:
        """Back-propagate one micro-batch's share of the minibatch loss; returns it and diagnostics.

        ``voiced``: the batch's own-voice transcripts (``agent_mode="own_voice"``); those of the
        micro-batch's episodes run in the same forward pass as the episodes, as extra rows.
        """
        part = batch.select(micro)
        width = part.input_ids.shape[1]
        voiced_part = None if voiced is None else voiced.select(micro)
        with self._autocast():
            logprobs, entropy, voiced_logprobs = self._forward(part, voiced_part)
        inputs = LossInputs(
            logprobs=logprobs,
            old_logprobs=old[micro, :width],
            agent_logprobs=part.agent_logprobs,
            advantages=advantages[micro],
            policy_mask=part.policy_mask,
            agent_mask=part.agent_mask,
            ref_logprobs=None if reference is None else reference[micro, :width],
            entropy=entropy,
        )
        own_voice = None
        if voiced_part is not None and voiced_logprobs is not None:
            own_voice = LossInputs(
                logprobs=voiced_logprobs,
                old_logprobs=voiced_part.behaviour(old[micro, :width]),  # pi_old in x_i
                agent_logprobs=voiced_part.agent_logprobs,
                advantages=advantages[micro],
                policy_mask=voiced_part.policy_mask,
                agent_mask=voiced_part.agent_mask,
            )
        loss, stats = objective(
            inputs,
            self.config.loss,
            own_voice=own_voice,
            total_tokens=total_tokens,
            total_sequences=total_sequences,
        )
        # The micro-batch losses add up to the minibatch loss; scaled by W they add up to W L_r,
        # whose mean over ranks (the logged value) is the whole minibatch's loss.
        scaled = loss * loss_scale(self.model, self.ranks)
        scaled.backward()
        named = {f"losses/{name}": value for name, value in stats.items() if name != "entropy"}
        if "entropy" in stats:
            named["charts/entropy"] = stats["entropy"]
        return float(scaled.detach()), named

    def _forward(
        self, part: EpisodeBatch, voiced: VoicedBatch | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Log-probs and entropies of ``part``'s tokens and, with ``voiced``, log-probs of its
        own-voice transcripts (``[B, T']``, 0 in empty rows), all from one forward pass.

        One pass, so that DDP sees one forward per backward, and an episode's prompt is shared by
        its own-voice transcript (:func:`~algorithms.forward.token_logprobs`).
        """
        temperature = self.config.rollout.temperature
        ids, mask = part.input_ids, part.attention_mask
        present = None if voiced is None else voiced.present.nonzero().squeeze(1)
        if present is not None and len(present):
            width = max(ids.shape[1], voiced.input_ids.shape[1])

            def padded(values: torch.Tensor, fill: int | bool) -> torch.Tensor:
                return torch.nn.functional.pad(values, (0, width - values.shape[1]), value=fill)

            pad = self.policy.pad_token_id
            ids = torch.cat([padded(ids, pad), padded(voiced.input_ids[present], pad)])
            mask = torch.cat([padded(mask, False), padded(voiced.attention_mask[present], False)])
        logprobs, entropy = token_logprobs(self.model, ids, mask, temperature=temperature, with_entropy=True)
        rows, width = part.input_ids.shape
        assert entropy is not None
        if voiced is None:
            return logprobs, entropy, None
        voiced_logprobs = logprobs.new_zeros(voiced.input_ids.shape)
        if present is not None and len(present):
            voiced_logprobs = voiced_logprobs.index_put(
                (present,), logprobs[rows:, : voiced.input_ids.shape[1]]
            )
        return logprobs[:rows, :width], entropy[:rows, :width], voiced_logprobs

    def _own_voice(self, batch: EpisodeBatch) -> VoicedBatch | None:
        """The batch's own-voice transcripts when ``loss.agent_mode="own_voice"``, else ``None``."""
        if not helper_term(self.config.loss.agent_mode).own_voice:
            return None
        protocol = self.envs[0].unwrapped.protocol
        return voiced_batch(batch, self.policy, protocol).to(self.device)

    @torch.no_grad()
    def _logprobs_without_grad(self, model: torch.nn.Module, batch: EpisodeBatch) -> torch.Tensor:
        out = torch.zeros_like(batch.behaviour_logprobs)
        for micro in torch.arange(len(batch), device=batch.input_ids.device).split(
            self.config.optim.micro_batch_size
        ):
            part = batch.select(micro.cpu())
            with self._autocast():
                logprobs, _ = token_logprobs(
                    model, part.input_ids, part.attention_mask, temperature=self.config.rollout.temperature
                )
            out[micro, : logprobs.shape[1]] = logprobs.float()
        return out

    def _autocast(self) -> Any:
        if self.config.bf16 and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoint into ``output_dir/checkpoints/step-NNNNNN`` and prune old checkpoints.

        Every rank takes part (random states and, under FSDP, weights and optimizer state are
        gathered); rank 0 writes.
        """
        rng = gather_objects(capture_rng(), self.ranks)
        model_state = full_model_state(self.model)
        optimizer = optimizer_state(self.model, self.optimizer)
        if self.ranks.is_main:
            state = TrainerState(
                step=self.step,
                data_epoch=self.data_epoch,
                data_position=self.data_position,
                optimizer=optimizer,
                scheduler=self.scheduler.state_dict(),
                rng=rng[0],
                config=self.config.model_dump(mode="json"),
                rank_rng=rng if len(rng) > 1 else None,
            )
            directory = self.config.output_dir / "checkpoints" / f"step-{self.step:06d}"
            save_checkpoint(directory, self.policy, state, model_state=model_state)
            prune_checkpoints(self.config.output_dir, self.config.keep_checkpoints)
        barrier(self.ranks)

    def _save_final(self) -> None:
        """The trained model in ``output_dir/final`` (LoRA adapters merged), written by rank 0."""
        model_state = full_model_state(self.model)
        if self.ranks.is_main:
            final = self.config.output_dir / "final"
            if model_state is None:
                save_merged(self.policy, final)
            else:
                save_model(final, self.policy, model_state)
        barrier(self.ranks)

    def _restore(self, checkpoint: Any) -> None:
        state = load_state(checkpoint)
        load_optimizer_state(self.model, self.optimizer, state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.step, self.data_epoch, self.data_position = state.step, state.data_epoch, state.data_position
        rng = rank_rng_state(state.rng, state.rank_rng, self.ranks)
        if rng is not None:
            restore_rng(rng)
        else:  # a rank the checkpoint has no state for (another world size)
            sequence = np.random.SeedSequence([self.config.seed, self.ranks.rank, self.step])
            set_seed(int(sequence.generate_state(1)[0]))
