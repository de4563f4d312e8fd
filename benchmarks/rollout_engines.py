"""Rollout throughput of the default engine (transformers + our decoding step) against colocated vLLM.

    python benchmarks/rollout_engines.py                                   # tiny shape, CPU
    python benchmarks/rollout_engines.py --hidden 512 --layers 8 --heads 8 --kv-heads 4 \\
        --intermediate 1536 --episodes 64 --tokens 256                     # where batching matters
    python benchmarks/rollout_engines.py --preset gpu-0.5b                 # Qwen2.5-0.5B shape, one GPU
    python benchmarks/rollout_engines.py --model smollm2-135m-instruct --episodes 32 --tokens 128
                                                    # a real model (aipo models pull NAME), float32

Each engine continues the same contexts (``--episodes`` episodes in groups of ``--group``
identical prompts, as in GRPO) for up to ``--tokens`` new tokens, with no stop string and
temperature 1. The figure is generated tokens per second of wall time, after one untimed warm-up
call, best of ``--repeats``. For vLLM the time of one weight sync (the learner's state dict into
the engine, :meth:`policies.vllm_engine.VLLMEngine.load_weights`) is printed too. With ``--trl``
(GPU, needs ``pip install "aipo[bench]"``), TRL's ``GRPOTrainer`` with ``use_vllm=True,
vllm_mode="colocate"`` is timed on the same shape: one training step's generation time as TRL logs it.

With ``--model`` (a registry name or a directory) the model is that pretrained one, in float32
on CPU, prompted through its chat template when it has one; the shape options are ignored.
Otherwise the model is a freshly initialised tiny-family model (:mod:`policies.tiny`) of the chosen shape,
with the byte tokenizer, so nothing is downloaded; random weights rarely sample EOS, so turns run
to ``--tokens``. vLLM's CPU kernel needs head_dim (hidden / heads) of 32 or more.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from policies.hf import HFPolicy
from policies.tiny import build_tiny_model, build_tokenizer

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 64, "layers": 4, "heads": 2, "kv_heads": 1, "intermediate": 192, "episodes": 16, "tokens": 64},
    "gpu-0.5b": {
        "hidden": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864,
        "episodes": 64, "tokens": 512, "group": 8,
    },
}  # fmt: skip
PROMPT = "Compute 37 * 48 - 129 and explain each step before the final answer."


def best_rate(generate: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Best tokens/s of ``repeats`` timed calls (after one warm-up), and the tokens of the last."""
    generate()
    rates, tokens = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        tokens = generate()
        rates.append(tokens / (time.perf_counter() - started))
    return max(rates), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    for name in ("hidden", "layers", "heads", "kv-heads", "intermediate", "episodes", "tokens", "group"):
        parser.add_argument(f"--{name}", type=int)
    parser.add_argument(
        "--model", help="a real model: a registry name (smollm2-135m-instruct) or a directory"
    )
    parser.add_argument("--engines", default="hf,vllm", help="comma-separated: hf, vllm")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--trl", action="store_true", help="also time TRL's colocated vLLM (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    shape = {"group": 8, **PRESETS[args.preset]}
    shape.update({key: value for key, value in vars(args).items() if key in shape and value is not None})
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.model:
        learner = pretrained_learner(args.model, device, shape)
        model, tokenizer = learner.model, learner.tokenizer
        shape = {key: shape[key] for key in ("episodes", "tokens", "group")} | {"model": args.model}
    else:
        tokenizer = build_tokenizer()
        model = build_tiny_model(
            tokenizer,
            hidden_size=shape["hidden"],
            num_layers=shape["layers"],
            num_heads=shape["heads"],
            num_kv_heads=shape["kv_heads"],
            intermediate_size=shape["intermediate"],
        )
        if device == "cuda":
            model = model.to(device=device, dtype=torch.bfloat16)
        learner = HFPolicy(
            model, tokenizer, max_new_tokens=shape["tokens"], stop=(), batch_size=shape["episodes"]
        )
    prompts = [f"Problem {index // shape['group']}: {PROMPT}" for index in range(shape["episodes"])]
    contexts = [learner.encode_prompt(prompt) for prompt in prompts]
    results: dict[str, float | int | str] = {**{key: value for key, value in shape.items()}, "device": device}
    print(f"shape {shape} on {device}")
    engines = args.engines.split(",")
    if "hf" in engines:
        rate, tokens = best_rate(
            lambda: sum(len(a.token_ids) for a in learner.generate(contexts)), args.repeats
        )
        results["hf_tokens_per_s"] = rate
        print(f"default (transformers + decoding step): {rate:,.0f} tokens/s ({tokens} tokens per call)")
    if "vllm" in engines:
        results.update(time_vllm(learner, contexts, shape["tokens"], args.repeats))
    if args.trl:
        results.update(time_trl(model, tokenizer, shape))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))


def pretrained_learner(name: str, device: str, shape: dict) -> HFPolicy:
    """A registry model or a directory, float32 on CPU (bfloat16 on GPU), chat-formatted if it can be."""
    from aipo_env import pretrained

    directory = pretrained.resolve(name)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    learner = HFPolicy.from_pretrained(
        directory,
        dtype=dtype,
        device=device,
        max_new_tokens=shape["tokens"],
        stop=(),
        batch_size=shape["episodes"],
    )
    learner.chat_template = bool(getattr(learner.tokenizer, "chat_template", None))
    return learner


def time_vllm(learner: HFPolicy, contexts: list[list[int]], tokens: int, repeats: int) -> dict[str, float]:
    from policies.vllm_engine import VLLMEngine

    with tempfile.TemporaryDirectory() as directory:
        learner.save_pretrained(directory)
        started = time.perf_counter()
        engine = VLLMEngine(learner, Path(directory), max_new_tokens=tokens, stop=(), seed=0)
        start_s = time.perf_counter() - started
        try:
            rate, generated = best_rate(
                lambda: sum(len(a.token_ids) for a in engine.generate(contexts)), repeats
            )
            syncs = []
            for _ in range(3):
                started = time.perf_counter()
                engine.load_weights(learner.model.state_dict().items())
                syncs.append(time.perf_counter() - started)
        finally:
            engine.close()
    sync_s = sorted(syncs)[1]
    print(
        f"vLLM colocated: {rate:,.0f} tokens/s ({generated} tokens per call); start {start_s:.1f} s, ", end=""
    )
    print(f"one weight sync {sync_s * 1000:.0f} ms (median of 3)")
    return {"vllm_tokens_per_s": rate, "vllm_start_s": start_s, "vllm_sync_s": sync_s}


def time_trl(model: torch.nn.Module, tokenizer: object, shape: dict[str, int]) -> dict[str, float]:
    """One TRL GRPO step with colocated vLLM on the same shape; its generation share as TRL reports it."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("RANK", "0")  # TRL's colocated vLLM expects a (one-process) distributed setup
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)  # type: ignore[attr-defined]
        prompts = [f"Problem {index}: {PROMPT}" for index in range(shape["episodes"] // shape["group"])]
        config = GRPOConfig(
            output_dir=str(Path(directory) / "trl"),
            per_device_train_batch_size=shape["episodes"],
            num_generations=shape["group"],
            max_completion_length=shape["tokens"],
            max_steps=2,
            use_vllm=True,
            vllm_mode="colocate",
            vllm_gpu_memory_utilization=0.3,
            bf16=True,
            report_to=[],
            logging_steps=1,
        )
        trainer = GRPOTrainer(
            model=directory,
            reward_funcs=lambda completions, **kwargs: [float(len(c)) for c in completions],
            args=config,
            train_dataset=Dataset.from_dict({"prompt": prompts}),
        )
        started = time.perf_counter()
        trainer.train()
        step_s = (time.perf_counter() - started) / 2
    tokens = shape["episodes"] * shape["tokens"]
    print(
        f"TRL GRPO + colocated vLLM: {step_s:.2f} s per step (<= {tokens / step_s:,.0f} generated tokens/s)"
    )
    return {"trl_step_s": step_s, "trl_tokens_per_s_upper": tokens / step_s}


if __name__ == "__main__":
    main()
