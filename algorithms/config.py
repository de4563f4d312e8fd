"""Typed configuration of training and evaluation, read from YAML plus ``key=value`` overrides.

Every option is documented once, here, in its field's description. Unknown keys and bad values
are errors that name the key::

    config = load_config(TrainConfig, "examples/aipo_arithmetic.yaml", ["optim.lr=3e-4"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from aipo_env.strict import Strict

AgentMode = Literal["mask", "raw", "luffy", "aipo", "own_voice"]
AdvantageScale = Literal["group", "batch", "none", "loo"]
#: the one list of each (``aipo.HELPER_TERMS`` and ``advantages.group_advantages`` cover exactly these)
AGENT_MODES: tuple[str, ...] = get_args(AgentMode)
ADVANTAGE_SCALES: tuple[str, ...] = get_args(AdvantageScale)


_Strict = Strict  # the name this module's models were written with


class TinyModelConfig(_Strict):
    """Shape of the built-in tiny model (used when ``model.name_or_path`` is ``tiny``)."""

    architecture: Literal["qwen2", "llama"] = Field("qwen2", description="Qwen2- or Llama-style blocks.")
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(192, ge=8)
    max_positions: int = Field(4096, ge=64, description="Longest transcript in tokens.")
    seed: int = Field(0, description="Initialisation seed.")


class LoraConfig(_Strict):
    """LoRA adapters (needs ``pip install peft``); only the adapters are trained."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field("all-linear", description="Module names, or 'all-linear'.")


class ModelConfig(_Strict):
    """Which model acts and learns."""

    name_or_path: str = Field(
        "tiny",
        description="A save_pretrained directory, a hub id, 'tiny' (a fresh tiny model), 'warmup:NAME' "
        "(a model shipped with the package, see policies/shipped.py; e.g. warmup:arithmetic), a registry "
        "model (smollm2-135m-instruct, gemma3-270m: `aipo models pull NAME`) or a .gguf file.",
    )
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    chat_template: bool = Field(False, description="Format the prompt with the tokenizer's chat template.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weights' dtype.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")
    lora: LoraConfig | None = Field(None, description="Train LoRA adapters instead of all weights.")
    train_layers: int | None = Field(
        None,
        ge=1,
        description="Train only the top N transformer blocks and the final norm (with lora: adapters on "
        "those blocks only); embeddings and lower blocks stay frozen, so the backward pass stops there.",
    )


class EnvConfig(_Strict):
    """The environment episodes are played in."""

    id: str = Field("aipo/Arithmetic-v0", description="A registered id (see `aipo envs`).")
    kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"level": 1, "max_turns": 3},
        description="Keyword arguments of the env's constructor (see its docstring).",
    )


class RolloutServerConfig(_Strict):
    """Rollouts sampled by an OpenAI-compatible server (vLLM) instead of in-process; see policies/completions.py."""

    base_url: str = Field(description="The server, e.g. http://localhost:8000/v1.")
    model: str = Field(description="The served model's name; its tokenizer must be model.name_or_path's.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (null: none)."
    )
    max_concurrency: int = Field(32, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per request, before the client retries.")
    reload_url: str | None = Field(
        None,
        description=(
            "POST {'model_path': DIR} here after a sync to make the server load the learner's weights "
            "(SGLang: http://HOST:PORT/update_weights_from_disk); null: the server keeps its weights "
            "(off-policy from a fixed behaviour policy). See algorithms/rollout_server.py."
        ),
    )
    reload_api: Literal["sglang", "vllm"] = Field(
        "sglang",
        description=(
            "How reload_url takes weights: 'sglang' (POST {'model_path': DIR} of a save_pretrained "
            "directory) or 'vllm' (reload_url is http://HOST:PORT/collective_rpc of `vllm serve` run "
            "with VLLM_SERVER_DEV_MODE=1; exact, see docs/vllm_weight_sync.md)."
        ),
    )
    sync_every: int = Field(1, ge=1, description="Steps between weight syncs (with reload_url).")


class VLLMEngineConfig(_Strict):
    """The colocated vLLM engine (``rollout.engine: vllm``); see policies/vllm_engine.py."""

    sync_every: int = Field(
        1, ge=1, description="Steps between copies of the learner's weights into the engine."
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Longest context plus turn the engine serves (null: the model's)."
    )
    gpu_memory_utilization: float = Field(
        0.3, gt=0.0, le=1.0, description="GPU: share of its memory vLLM takes; the learner needs the rest."
    )
    kv_cache_memory_bytes: int | None = Field(
        None,
        ge=1 << 20,
        description="The KV cache's size in bytes (null: 1 GiB on CPU; on GPU from the share above).",
    )
    sleep_mode: bool = Field(
        False,
        description="GPU: free the engine's KV cache and weights while the learner updates (vLLM sleep mode).",
    )


class RolloutConfig(_Strict):
    """How episodes are sampled."""

    problems_per_step: int = Field(4, ge=1, description="Problems per training step (P).")
    group_size: int = Field(4, ge=1, description="Episodes per problem (G); advantages compare them.")
    max_new_tokens: int = Field(64, ge=1, description="Most tokens in one turn.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature (the learner uses it too).")
    top_k: int = Field(0, ge=0, description="Sample from the top k tokens only (0 = all).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (1 = off).")
    guided_per_group: int = Field(
        0,
        ge=0,
        description=(
            "Episodes per group whose first turn is a scripted consult (guided exploration); the "
            "request is context, not learned, and the policy plays the rest; rollout/consult_rate "
            "counts it, rollout/unguided_consult_rate counts the other episodes only. 0 = off."
        ),
    )
    reference_per_group: int = Field(
        0,
        ge=0,
        description=(
            "Episodes per group (the last ones) that play the problem's complete reference solution "
            "as their one turn instead of sampling (trajectory-level guidance, LUFFY); its tokens are "
            "learned as helper tokens with pi_agent = 1 (loss.agent_mode: luffy for policy shaping) and "
            "its reward enters the group's advantage; rollout/sampled_accuracy leaves these episodes "
            "out. Needs a task with worked solutions (problem steps). 0 = off."
        ),
    )
    guide_agent: str = Field("reasoning", description="The agent a guided episode consults first.")
    fast_decode: bool = Field(
        True,
        description=(
            "Decode Qwen2/Qwen3/Llama models with policies/decode_step.py (the same logits, less "
            "per-token overhead); false: the transformers forward. Other models always use the latter."
        ),
    )
    guide_query: str = Field("next step", description="The query of a guided episode's first consult.")
    engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="What samples episodes in-process: 'hf' (the learner's transformers model, "
        "policies/hf.py) or 'vllm' (a colocated vllm.LLM whose weights follow the learner's, "
        "policies/vllm_engine.py; needs the vllm extra). Must be 'hf' with `server`.",
    )
    vllm: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig, description="Settings of engine=vllm.")
    server: RolloutServerConfig | None = Field(
        None, description="Sample episodes on an OpenAI-compatible server; null: in-process."
    )

    @model_validator(mode="after")
    def _guided_fit(self) -> RolloutConfig:
        if self.guided_per_group + self.reference_per_group > self.group_size:
            raise ValueError(
                f"guided_per_group ({self.guided_per_group}) + reference_per_group "
                f"({self.reference_per_group}) cannot exceed group_size ({self.group_size})"
            )
        if self.engine == "vllm" and self.server is not None:
            raise ValueError(
                "rollout.engine=vllm starts an engine in this process; rollout.server samples on a server: "
                "set one of them (rollout.server=null or rollout.engine=hf)"
            )
        return self


class LossConfig(_Strict):
    """The objective; :mod:`algorithms.aipo` writes it out."""

    advantage_scale: AdvantageScale = Field(
        "group",
        description="Divide centred rewards by the group std (GRPO), batch std, or nothing (Dr. GRPO); "
        "'loo': subtract the mean reward of the group's other episodes (RLOO leave-one-out baseline, "
        "G / (G - 1) times Dr. GRPO's advantage).",
    )
    clip_low: float = Field(0.2, ge=0.0, lt=1.0, description="PPO ratio clip below 1 (epsilon_low).")
    clip_high: float = Field(
        0.28, ge=0.0, description="PPO ratio clip above 1 (epsilon_high, DAPO clip-higher)."
    )
    aggregation: Literal["token", "sequence"] = Field(
        "token", description="Average over all tokens (DAPO) or per episode first (GRPO)."
    )
    kl_coef: float = Field(
        0.0, ge=0.0, description="Weight of the k3 KL to the initial model (0 = no reference)."
    )
    entropy_coef: float = Field(0.0, ge=0.0, description="Weight of the entropy bonus on policy tokens.")
    agent_mode: AgentMode = Field(
        "aipo",
        description="Loss on helper tokens: mask (GRPO), raw, luffy, aipo (clipped coefficient) or own_voice "
        "(aipo's term in the transcript where the policy wrote the reply itself, consult and feedback tags "
        "removed, and the continuation learned there too; algorithms/aipo.py, algorithms/own_voice.py).",
    )
    agent_weight: float = Field(1.0, ge=0.0, description="Weight lambda of the helper-token term.")
    agent_positive_only: bool = Field(True, description="Learn helper tokens only in episodes with A > 0.")
    agent_clip_min: float = Field(
        0.1, gt=0.0, description="aipo, own_voice: lower bound c_min of the coefficient."
    )
    agent_clip_max: float = Field(
        1.0, gt=0.0, description="aipo, own_voice: upper bound c_max of the coefficient."
    )
    luffy_gamma: float = Field(0.1, gt=0.0, description="luffy: gamma in f(p) = p / (p + gamma).")

    @model_validator(mode="after")
    def _clip_range(self) -> LossConfig:
        if self.agent_clip_min > self.agent_clip_max:
            raise ValueError(
                f"agent_clip_min ({self.agent_clip_min}) must not exceed agent_clip_max ({self.agent_clip_max})"
            )
        return self


class OptimConfig(_Strict):
    """AdamW, its schedule, and how a batch is cut into optimizer steps."""

    lr: float = Field(1e-5, gt=0.0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="Decay after warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up.")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="Clip the gradient norm (null = off).")
    epochs: int = Field(1, ge=1, description="Passes over each batch of episodes.")
    minibatches: int = Field(1, ge=1, description="Optimizer steps per pass (the batch is split).")
    micro_batch_size: int = Field(8, ge=1, description="Episodes per forward pass; gradients accumulate.")
    skip_zero_gradient_rows: bool = Field(
        True,
        description="Run no forward or backward for episodes whose loss has zero gradient (A = 0, no KL, "
        "no entropy bonus; see algorithms.aipo.zero_gradient_rows); the update is the same. Loss "
        "diagnostics other than losses/loss (entropy, ratio, clip fractions) are then means over the "
        "episodes that ran, and absent when none did. Single-process runs only.",
    )
    recompute_behaviour_logprobs: bool = Field(
        False,
        description="Recompute pi_old with a forward pass before the update instead of using the sampler's "
        "log-probs (for samplers whose numerics differ, e.g. bf16 or another engine).",
    )


class TrainConfig(_Strict):
    """Everything ``aipo train`` reads."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    steps: int = Field(10, ge=1, description="Training steps (one batch of episodes each).")
    seed: int = Field(0, description="Seeds sampling, the problem order and the tiny model.")
    output_dir: Path = Field(Path("runs/train"), description="Checkpoints, metrics.jsonl and plots.")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0 = at the end only).")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept on disk.")
    resume_from: str | None = Field(None, description="A checkpoint directory, or 'latest' in output_dir.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available.")
    bf16: bool = Field(False, description="bfloat16 autocast for the update (CUDA only).")
    tensorboard: bool = Field(False, description="Also log to TensorBoard (needs `pip install tensorboard`).")
    wandb_project: str | None = Field(None, description="Also log to this W&B project (needs wandb).")
    progress: bool = Field(True, description="Show a progress bar.")
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="Under torchrun / accelerate launch: DDP (whole model per rank) or FSDP (sharded "
        "weights, gradients and optimizer state); see algorithms/distributed.py. Ignored on one process.",
    )

    @model_validator(mode="after")
    def _fits(self) -> TrainConfig:
        episodes = self.rollout.problems_per_step * self.rollout.group_size
        if self.optim.minibatches > episodes:
            raise ValueError(
                f"optim.minibatches ({self.optim.minibatches}) exceeds the episodes per step ({episodes})"
            )
        return self


class ServedModelConfig(_Strict):
    """A model behind an OpenAI-compatible server (vLLM, SGLang, hosted APIs), for ``policy=openai``."""

    model: str | None = Field(None, description="The served model's name, as the server lists it.")
    base_url: str | None = Field(
        None, description="The server, e.g. http://localhost:8000/v1 (null = the OpenAI API)."
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the API key (null: the server needs none).",
    )
    max_tokens: int = Field(1024, ge=1, description="Most tokens in one turn of the served model.")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.")


class EvalConfig(_Strict):
    """Everything ``aipo eval`` reads. Consults are always off: the policy reasons alone."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    policy: str = Field(
        "model",
        description="'model', 'openai' (a served model, see `openai`), or a scripted baseline: "
        "'never_consult', 'consult_first:AGENT', 'random'.",
    )
    openai: ServedModelConfig = Field(
        default_factory=ServedModelConfig, description="The served model evaluated with policy=openai."
    )
    env: EnvConfig = Field(default_factory=EnvConfig)
    problems: int = Field(32, ge=1, description="Evaluate problems 0..N-1 of the env's dataset.")
    first_problem: int = Field(0, ge=0, description="Index of the first problem evaluated.")
    samples: int = Field(4, ge=1, description="Episodes per problem (n of pass@k).")
    consult: Literal["off", "agents"] = Field(
        "off",
        description="off: the policy alone, consults unanswered (what it learned); agents: consults "
        "answered, accuracy with the helpers. YAML's bare off/on (false/true) are taken as off/agents.",
    )
    max_new_tokens: int = Field(64, ge=1, description="Most tokens the policy writes in one turn.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature (ignored with greedy).")
    greedy: bool = Field(False, description="Argmax decoding (then samples > 1 repeat one answer).")
    batch_size: int = Field(64, ge=1, description="Episodes played at once.")
    seed: int = Field(0, description="Seeds sampling and the envs' problem order, so a rerun repeats it.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model runs; auto: CUDA if present."
    )
    output_dir: Path = Field(Path("runs/eval"), description="Where eval.json and pass_at_k.png go.")
    progress: bool = Field(True, description="Show a progress bar.")

    @field_validator("consult", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        return ("agents" if value else "off") if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _served_model_named(self) -> EvalConfig:
        if self.policy == "openai" and not self.openai.model:
            raise ValueError(
                "policy=openai needs openai.model: the served model's name (e.g. openai.model=Qwen/Qwen3-8B)"
            )
        return self


Config = TypeVar("Config", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message says which key and why."""


def load_config(kind: type[Config], path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read ``path`` (YAML; ``None`` = defaults), apply ``key.sub=value`` overrides, validate.

    Override values are parsed as YAML (``3``, ``1e-4``, ``true``, ``[1, 3]``, ``null``).

    Raises:
        ConfigError: naming the file, the key and what is wrong.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of options, got {type(loaded).__name__}")
        data = loaded or {}
    for override in overrides or []:
        _apply(data, override)
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"{path or 'config'}: {problems}") from error


def _apply(data: dict[str, Any], override: str) -> None:
    key, separator, raw = override.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"override {override!r} must look like key=value (e.g. optim.lr=1e-4)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({error})") from error
    parts = key.strip().split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {'.'.join(parts[: depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value
