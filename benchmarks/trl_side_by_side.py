"""Our GRPO against TRL's ``GRPOTrainer`` on identical work: time per step, tokens/s, memory, MFU.

    pip install -e ".[bench]"                        # TRL, for this script only
    python benchmarks/trl_side_by_side.py            # CPU: 2 rounds x (1 warm-up + 5 timed steps) each
    python benchmarks/trl_side_by_side.py --rounds 1 --steps 3 --group-size 4
    python benchmarks/trl_side_by_side.py --sft-steps 0  # random weights: every advantage is 0
    python benchmarks/trl_side_by_side.py --model smollm2-135m-instruct --sft-steps 0 --level 1 \
        --rounds 1 --steps 3 --max-new-tokens 48     # a real pretrained model (aipo models pull NAME)
    python benchmarks/trl_side_by_side.py --device cuda --shape qwen2-0.5b --sft-steps 0 \
        --max-new-tokens 512 --rounds 1 --steps 3   # one GPU: ~0.5B Qwen2 shape, bf16 autocast

What both frameworks get, the same for each:

* the model: one tiny Qwen2-style model (:mod:`policies.tiny`), given ``--sft-steps`` steps of
  supervised warm-up (:func:`algorithms.sft.supervised_warmup`) on worked solutions of
  ``--sft-examples`` problems of the same level's *test* split, written once with
  ``save_pretrained`` and loaded from that directory by both (reused by later runs with the same
  settings and ``--out``). Random weights never answer
  correctly, so every advantage would be 0; after the warm-up some completions are right and
  groups have mixed rewards, as in real training. The share of groups whose rewards are all equal
  (advantage 0 for every completion) is reported for each framework;
* the prompts: ``aipo/Arithmetic-v0`` problems as the env shows them (consults off, one turn),
  encoded as ``<bos>`` + text by the same tokenizer;
* the reward: the env's own score of the completion (correct answer = 1);
* ``--prompts`` problems x ``--group-size`` completions per step, at most ``--max-new-tokens``
  tokens each, temperature 1, no top-k / top-p;
* the phases: "rollout" is generation plus reward (ours: :meth:`Trainer.collect`; TRL's:
  ``_generate_and_score_completions``), "update" is the rest of the step;
* the update: one AdamW step per generation batch (constant ``--lr``, betas (0.9, 0.999),
  eps 1e-8, no weight decay, grad-norm clip 1), clipped surrogate with eps 0.2 / 0.28,
  token-level aggregation (TRL's ``dapo``), group-std advantages, no KL, entropy computed;
* float32 weights; on CPU float32 activations, on GPU (``--device cuda``) bf16 autocast in both;
  no gradient checkpointing (TRL's default is switched off to match ours).

Ours runs twice: as configured by default (``aipo``: episodes with advantage 0 skip the forward
and backward, which leaves the update unchanged; ``optim.skip_zero_gradient_rows``) and with
that skip off (``aipo-noskip``); TRL has no such skip. Each runs in its own
subprocess (so that peak resident memory is its own) with the same number of torch threads. The
processes take turns step by step (one runs a step while the others wait; the order rotates each
step), so that on a shared machine all see the same load. A
step's time runs from the moment it may start to the end of the step, logging included; the first
``--warmup`` steps are not counted, and the figures are medians over all ``--rounds`` (fresh
processes each round). Ratios are ours / TRL's (below 1: ours is faster / smaller), except
end-to-end throughput (generated tokens per second of whole steps; above 1: ours is faster).
Without the warm-up (``--sft-steps 0``) the skip would skip every update, so only ``aipo-noskip``
runs against TRL.

Also reported per framework: tokens per second of the rollout (generated tokens) and of the update
(every token of every episode), and, where the device's bf16 peak is known (or ``--peak-tflops``
gives it), the update's model FLOPs utilisation (:mod:`model_flops`). Peak memory is the resident
set on CPU and ``torch.cuda.max_memory_allocated`` on GPU. With ``--shape qwen2-0.5b`` the model
is Qwen2.5-0.5B's body with the byte vocabulary and random weights (throughput only). Random
weights draw EOS about once in 259 tokens, so completions end at varied lengths up to
``--max-new-tokens`` in both frameworks; tokens/s counts the tokens actually generated.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lockstep import Gate, Worker, run_round
from model_flops import bf16_peak_tflops, training_flops

ENV_ID = "aipo/Arithmetic-v0"
FRAMEWORKS = ("aipo", "aipo-noskip", "trl")
# Model shapes (policies.tiny.build_tiny_model keywords); "qwen2-0.5b" is Qwen2.5-0.5B's body
# (24 layers, width 896, 14 query and 2 KV heads) with the byte vocabulary: about 360M parameters.
SHAPES: dict[str, dict[str, int]] = {
    "tiny": {},
    "qwen2-0.5b": {
        "hidden_size": 896,
        "num_layers": 24,
        "num_heads": 14,
        "num_kv_heads": 2,
        "intermediate_size": 4864,
    },
}


def frameworks(arguments: argparse.Namespace) -> tuple[str, ...]:
    """Without the warm-up every advantage is 0 and the skip would skip every update: leave it out."""
    return FRAMEWORKS if arguments.sft_steps else FRAMEWORKS[1:]


def env_kwargs(arguments: argparse.Namespace) -> dict[str, Any]:
    """One turn, consults off: the policy answers alone and the env scores the answer."""
    return {"level": arguments.level, "size": arguments.problems, "max_turns": 1, "consult": "off"}


def peak_memory_gib(device: str) -> float:
    """Peak resident memory on CPU; peak memory allocated by torch on a GPU."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# -- the two workers (each runs in its own process) -------------------------------------------------


PHASES = ("rollout_s", "accuracy", "zero_variance_groups", "generated_tokens", "episode_tokens")
REWARDS = ("accuracy", "zero_variance_groups")  # averaged over steps; timings are medians


def run_aipo(arguments: argparse.Namespace, gate: Gate) -> dict[str, list[float]]:
    from algorithms.config import TrainConfig, load_config
    from algorithms.trainer import Trainer

    overrides = [
        f"device={arguments.device}",
        f"bf16={arguments.device == 'cuda'}",
        "progress=false",
        f"seed={arguments.seed}",
        f"output_dir={arguments.out / 'aipo_run'}",
        f"steps={arguments.warmup + arguments.steps}",
        f"model.name_or_path={model_dir(arguments)}",
        f"env.id={ENV_ID}",
        f"env.kwargs={json.dumps(env_kwargs(arguments))}",
        f"rollout.problems_per_step={arguments.prompts}",
        f"rollout.group_size={arguments.group_size}",
        f"rollout.max_new_tokens={arguments.max_new_tokens}",
        "loss.agent_mode=mask",
        "loss.aggregation=token",
        "loss.advantage_scale=group",
        "loss.clip_low=0.2",
        "loss.clip_high=0.28",
        f"optim.lr={arguments.lr}",
        f"optim.micro_batch_size={arguments.prompts * arguments.group_size}",
        "optim.max_grad_norm=1.0",
        f"optim.skip_zero_gradient_rows={arguments.worker == 'aipo'}",
    ]
    config = load_config(TrainConfig, None, overrides)
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    episodes = arguments.prompts * arguments.group_size

    def step_done(_: Trainer, metrics: dict[str, float]) -> None:
        gate.step_done()
        phases["rollout_s"].append(metrics["perf/rollout_s"])
        phases["accuracy"].append(metrics["rollout/accuracy"])
        phases["zero_variance_groups"].append(metrics["rollout/zero_variance_groups"])
        phases["generated_tokens"].append(metrics["rollout/policy_tokens"] * episodes)
        phases["episode_tokens"].append(metrics["rollout/episode_tokens"] * episodes)
        gate.wait()

    trainer = Trainer(config, callbacks=[step_done])
    gate.wait()
    trainer.learn()
    return phases


def run_trl(arguments: argparse.Namespace, gate: Gate) -> dict[str, list[float]]:
    import gymnasium as gym
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import aipo_env  # noqa: F401  (registers the env ids)

    env = gym.make(ENV_ID, **env_kwargs(arguments))
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    rows = [{"prompt": env.reset(options={"index": i})[0], "index": i} for i in range(arguments.problems)]

    def correctness(completions: list[str], index: list[int], **_: Any) -> list[float]:
        rewards = []
        groups: dict[int, set[float]] = {}
        for completion, problem in zip(completions, index, strict=True):
            env.reset(options={"index": int(problem)})
            rewards.append(float(env.step(completion)[1]))
            groups.setdefault(int(problem), set()).add(rewards[-1])
        phases["accuracy"].append(sum(reward == 1.0 for reward in rewards) / len(rewards))
        phases["zero_variance_groups"].append(sum(len(seen) == 1 for seen in groups.values()) / len(groups))
        return rewards

    class Gated(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            gate.wait()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            gate.step_done()
            gate.wait()

    class TimedGRPOTrainer(GRPOTrainer):
        """Times the rollout phase (generation and reward), which TRL does inside ``training_step``."""

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            started = time.perf_counter()
            output = super()._generate_and_score_completions(inputs)
            phases["rollout_s"].append(time.perf_counter() - started)
            generated = float(output["completion_mask"].sum())
            phases["generated_tokens"].append(generated)
            phases["episode_tokens"].append(generated + float(output["prompt_mask"].sum()))
            return output

    config = GRPOConfig(
        output_dir=str(arguments.out / "trl_run"),
        use_cpu=arguments.device == "cpu",
        seed=arguments.seed,
        max_steps=arguments.warmup + arguments.steps,
        per_device_train_batch_size=arguments.prompts * arguments.group_size,
        gradient_accumulation_steps=1,
        num_generations=arguments.group_size,
        num_iterations=1,
        max_completion_length=arguments.max_new_tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        learning_rate=arguments.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        scale_rewards="group",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        # TRL's defaults are bf16 autocast and gradient checkpointing; ours are bf16 autocast on
        # GPU only, and no checkpointing.
        bf16=arguments.device == "cuda",
        gradient_checkpointing=False,
    )
    trainer = TimedGRPOTrainer(
        model=str(model_dir(arguments)),
        reward_funcs=correctness,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir(arguments)),
        callbacks=[Gated()],
    )
    trainer.train()
    return phases


def worker(arguments: argparse.Namespace) -> None:
    import torch
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    gate = Gate()
    phases = (run_trl if arguments.worker == "trl" else run_aipo)(arguments, gate)
    phases["update_s"] = [
        step - rollout for step, rollout in zip(gate.step_s, phases["rollout_s"], strict=False)
    ]
    result = {"step_s": gate.step_s, "phases": phases, "peak_memory_gib": peak_memory_gib(arguments.device)}
    print("RESULT " + json.dumps(result), flush=True)


# -- the driver ---------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("torch", "transformers", "trl", "accelerate", "datasets", "aipo")
    return {name: version(name) for name in names} | {"python": platform.python_version()}


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB"


def summarise(runs: dict[str, list[dict[str, Any]]], arguments: argparse.Namespace) -> dict[str, Any]:
    """Medians over the timed steps of every round, per framework, and ours / TRL's."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir(arguments))
    episodes = arguments.prompts * arguments.group_size
    summary: dict[str, Any] = {}
    for framework, results in runs.items():
        rows = [
            {"step_s": step} | {name: values[index] for name, values in result["phases"].items()}
            for result in results
            for index, step in enumerate(result["step_s"])
            if index >= arguments.warmup
        ]
        for row in rows:
            row["rollout_tokens_per_s"] = row["generated_tokens"] / row["rollout_s"]
            row["update_tokens_per_s"] = row["episode_tokens"] / row["update_s"]
            row["tokens_per_s"] = row["generated_tokens"] / row["step_s"]  # end to end
            flops = training_flops(config, row["episode_tokens"], row["episode_tokens"] / episodes)
            row["update_tflops"] = flops / row["update_s"] / 1e12
        entry: dict[str, Any] = {
            f"mean_{name}" if name in REWARDS else f"median_{name}": (
                statistics.mean if name in REWARDS else statistics.median
            )([row[name] for row in rows])
            for name in rows[0]
        }
        entry["step_s"] = [row["step_s"] for row in rows]
        entry["peak_memory_gib"] = max(result["peak_memory_gib"] for result in results)
        if arguments.peak_tflops:
            entry["update_mfu"] = entry["median_update_tflops"] / arguments.peak_tflops
        summary[framework] = entry
    trl = summary["trl"]
    for ours in runs.keys() - {"trl"}:
        summary[f"{ours}/trl"] = {
            "time": summary[ours]["median_step_s"] / trl["median_step_s"],
            "rollout": summary[ours]["median_rollout_s"] / trl["median_rollout_s"],
            "update": summary[ours]["median_update_s"] / trl["median_update_s"],
            "memory": summary[ours]["peak_memory_gib"] / trl["peak_memory_gib"],
            "throughput": summary[ours]["median_tokens_per_s"] / trl["median_tokens_per_s"],
        }
    return summary


def model_dir(arguments: argparse.Namespace) -> Path:
    """The directory both frameworks load: ``--model`` resolved, or the tiny model written here."""
    if arguments.model:
        from aipo_env import pretrained

        return Path(pretrained.resolve(arguments.model))
    return arguments.out / "model"


def prepare_model(arguments: argparse.Namespace) -> Path:
    """The model (after its supervised warm-up, if any), saved once (reused while the settings match)."""
    import gymnasium as gym
    import torch

    from algorithms.sft import SFTSettings, supervised_warmup
    from policies.demonstrations import demonstrate
    from policies.hf import HFPolicy
    from policies.tiny import save_tiny

    directory = arguments.out / "model"
    settings = {
        "level": arguments.level,
        "sft_steps": arguments.sft_steps,
        "sft_examples": arguments.sft_examples,
        "seed": arguments.seed,
        "shape": arguments.shape,
    }
    stamp = directory / "warmup.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return directory
    save_tiny(directory, seed=arguments.seed, **SHAPES[arguments.shape])
    if arguments.sft_steps:
        torch.set_num_threads(max(arguments.threads, 1))
        kwargs = env_kwargs(arguments) | {"size": arguments.sft_examples, "split": "test"}
        demo_env = gym.make(ENV_ID, **kwargs)
        records = [demonstrate(demo_env, index) for index in range(arguments.sft_examples)]
        policy = HFPolicy.from_pretrained(directory, device="cpu", dtype=torch.float32)
        settings_ = SFTSettings(steps=arguments.sft_steps, seed=arguments.seed, progress=False)
        started = time.perf_counter()
        history = supervised_warmup(policy, records, settings_)
        print(
            f"warm-up: {arguments.sft_steps} steps in {time.perf_counter() - started:.0f} s, "
            f"final loss {history[-1]['loss']:.3f}",
            flush=True,
        )
        policy.save_pretrained(directory)
    stamp.write_text(json.dumps(settings))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=4, help="problems per step")
    parser.add_argument("--group-size", type=int, default=8, help="completions per problem")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest completion")
    parser.add_argument("--level", type=int, default=2, help="arithmetic difficulty (1-10)")
    parser.add_argument("--problems", type=int, default=64, help="size of the problem set")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="fresh pairs of processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=500, help="warm-up steps of the model (0: random)")
    parser.add_argument("--sft-examples", type=int, default=2000, help="worked solutions to warm up on")
    parser.add_argument("--out", type=Path, default=Path("results/trl_side_by_side"))
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: bf16 autocast in both"
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="the model's size")
    parser.add_argument(
        "--model",
        help="a real model instead of the tiny one: a registry name (smollm2-135m-instruct) or a directory; "
        "full fine-tuning in float32 in both, prompts as raw text (no chat template) in both",
    )
    parser.add_argument(
        "--peak-tflops", type=float, help="the device's bf16 peak, for MFU (default: known GPUs)"
    )
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    if importlib.util.find_spec("trl") is None:
        raise SystemExit('this benchmark needs TRL: pip install -e ".[bench]" (or pip install "trl>=1.16")')
    if arguments.model and arguments.sft_steps:
        raise SystemExit("--model trains a pretrained model as it is: add --sft-steps 0")
    if arguments.sft_steps and arguments.shape != "tiny":
        raise SystemExit(
            f"--shape {arguments.shape} is for throughput with random weights: add --sft-steps 0"
        )
    device = describe_device(arguments)
    arguments.out.mkdir(parents=True, exist_ok=True)
    if not arguments.model:
        prepare_model(arguments)
    runs: dict[str, list[dict[str, Any]]] = {framework: [] for framework in frameworks(arguments)}
    for round_ in range(arguments.rounds):
        workers = {
            name: Worker(__file__, name, sys.argv[1:], arguments.out, arguments.threads) for name in runs
        }
        for framework, result in run_round(workers, arguments.warmup + arguments.steps).items():
            runs[framework].append(result)
        print(f"round {round_ + 1} of {arguments.rounds} done", flush=True)
    summary = summarise(runs, arguments)
    summary.update(command=" ".join(["python", *sys.argv]), versions=versions(), machine=device)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "trl_side_by_side.json").write_text(json.dumps(summary, indent=2))
    report(summary, list(runs))


def describe_device(arguments: argparse.Namespace) -> str:
    """The machine (CPU) or the GPU's name; fills in ``--peak-tflops`` for a known GPU."""
    if arguments.device == "cpu":
        return machine()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    name = torch.cuda.get_device_name()
    arguments.peak_tflops = arguments.peak_tflops or bf16_peak_tflops(name)
    return f"{name} (bf16 peak {arguments.peak_tflops} TFLOP/s), host: {machine()}"


def report(summary: dict[str, Any], names: list[str]) -> None:
    for framework in names:
        entry = summary[framework]
        rewards = "".join(f"  {name} {entry['mean_' + name]:.2f}" for name in REWARDS)
        mfu = f"  update MFU {entry['update_mfu']:.1%}" if "update_mfu" in entry else ""
        print(
            f"{framework:>11}: {entry['median_step_s']:.3f} s/step  peak memory {entry['peak_memory_gib']:.2f} GiB"
            f"  rollout_s {entry['median_rollout_s']:.3f}  update_s {entry['median_update_s']:.3f}{rewards}"
        )
        print(
            f"{'':>11}  tokens/s: rollout {entry['median_rollout_tokens_per_s']:.0f}, update "
            f"{entry['median_update_tokens_per_s']:.0f}, end to end {entry['median_tokens_per_s']:.0f}{mfu}"
        )
    for ours in names[:-1]:
        ratio = summary[f"{ours}/trl"]
        print(
            f"{ours} / TRL: time {ratio['time']:.2f}x (rollout {ratio['rollout']:.2f}x, update "
            f"{ratio['update']:.2f}x)  memory {ratio['memory']:.2f}x  end-to-end throughput "
            f"{ratio['throughput']:.2f}x"
        )
    print(json.dumps({"versions": summary["versions"], "machine": summary["machine"]}))


if __name__ == "__main__":
    main()
