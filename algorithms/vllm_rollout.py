"""The colocated vLLM engine in training: started beside the learner, its weights kept equal to the learner's.

With ``rollout.engine: vllm`` the trainer writes its model once (LoRA adapters merged) to
``output_dir/engine`` and starts a :class:`~policies.vllm_engine.VLLMEngine` on it in its own
process. Episodes are played with the engine through the same rollout loop as with the default
engine. After every ``rollout.vllm.sync_every``-th optimizer step the learner's state dict (LoRA
merged into a copy) is copied into the engine in memory, with no round trip through the disk.
Between syncs the engine lags by up to ``sync_every - 1`` steps; the loss's importance ratio
corrects for that as for a server. ``rollout/logprob_gap_max`` shows whether the sync is exact:
with ``sync_every=1`` it stays at float rounding (about 1e-6 in float32).

A failed sync or a failed rollout stops the run with :class:`~policies.vllm_engine.VLLMEngineError`
(the engine holds weights that are wrong or unknown, and training on them would be silently
off-policy); the checkpoints written so far are intact and ``resume_from=latest`` continues.

One process only: under ``torchrun`` each rank would need its own engine and vLLM's own process
group beside the learner's, which is not supported yet (refused at start, see
:func:`algorithms.distributed.check_layout`); use ``rollout.engine: hf`` there.
"""

from __future__ import annotations

import time
from pathlib import Path

from algorithms.config import RolloutConfig
from algorithms.models import merged_state, save_merged
from policies.hf import HFPolicy
from policies.vllm_engine import VLLMEngine

ENGINE_DIR = "engine"


class EngineWeights:
    """Copies the learner's weights into a colocated engine every ``every`` steps."""

    def __init__(self, engine: VLLMEngine, every: int = 1) -> None:
        self.engine, self.every = engine, every

    def after_step(self, step: int, policy: HFPolicy) -> float | None:
        """Sync if ``step`` is due; returns the seconds it took, ``None`` when not due."""
        if step % self.every:
            return None
        started = time.perf_counter()
        self.engine.load_weights(merged_state(policy).items())
        return time.perf_counter() - started


def start_engine(
    rollout: RolloutConfig, policy: HFPolicy, output_dir: Path, *, seed: int
) -> tuple[VLLMEngine, EngineWeights]:
    """Write the policy's weights to ``output_dir/engine``, start the engine there, and its sync."""
    settings = rollout.vllm
    directory = output_dir / ENGINE_DIR
    save_merged(policy, directory)  # with the tokenizer
    engine = VLLMEngine(
        policy,
        directory,
        max_new_tokens=rollout.max_new_tokens,
        temperature=rollout.temperature,
        top_k=rollout.top_k,
        top_p=rollout.top_p,
        stop=policy.stop,
        seed=seed,
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        kv_cache_memory_bytes=settings.kv_cache_memory_bytes,
        sleep_mode=settings.sleep_mode,
    )
    return engine, EngineWeights(engine, settings.sync_every)
