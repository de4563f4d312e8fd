"""Our GRPO against TRL's ``GRPOTrainer`` on identical work, on CPU: seconds per step and peak memory.

    pip install -e ".[bench]"                        # TRL, for this script only
    python benchmarks/trl_side_by_side.py            # 2 rounds x (1 warm-up + 5 timed steps) each
    python benchmarks/trl_side_by_side.py --rounds 1 --steps 3 --group-size 4
    python benchmarks/trl_side_by_side.py --sft-steps 0  # random weights: every advantage is 0

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
* float32 weights and activations, no gradient checkpointing (TRL's defaults, bf16 autocast and
  gradient checkpointing, are switched off to match ours).

Ours runs twice: as configured by default (``aipo``: episodes with advantage 0 skip the forward
and backward, which leaves the update unchanged; ``optim.skip_zero_gradient_rows``) and with
that skip off (``aipo-noskip``); TRL has no such skip. Each of the three runs in its own
subprocess (so that peak resident memory is its own) with the same number of torch threads. The
processes take turns step by step (one runs a step while the others wait; the order rotates each
step), so that on a shared machine all see the same load. A
step's time runs from the moment it may start to the end of the step, logging included; the first
``--warmup`` steps are not counted, and the figures are medians over all ``--rounds`` (fresh
processes each round). Ratios are ours / TRL's (below 1: ours is faster / smaller).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENV_ID = "aipo/Arithmetic-v0"
FRAMEWORKS = ("aipo", "aipo-noskip", "trl")


def env_kwargs(arguments: argparse.Namespace) -> dict[str, Any]:
    """One turn, consults off: the policy answers alone and the env scores the answer."""
    return {"level": arguments.level, "size": arguments.problems, "max_turns": 1, "consult": "off"}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# -- the two workers (each runs in its own process) -------------------------------------------------


class Gate:
    """Lock-step with the driver: a worker waits for ``go`` on stdin before each step.

    The driver lets one framework run a step while the other waits, then the other, so both see
    the same load on a shared machine. A step's time runs from ``go`` to the end of the step.
    """

    def __init__(self) -> None:
        self.opened = 0.0
        self.step_s: list[float] = []

    def wait(self) -> None:
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the driver went away")
        self.opened = time.perf_counter()

    def step_done(self) -> None:
        self.step_s.append(time.perf_counter() - self.opened)


def run_aipo(arguments: argparse.Namespace, gate: Gate) -> dict[str, list[float]]:
    from algorithms.config import TrainConfig, load_config
    from algorithms.trainer import Trainer

    overrides = [
        "device=cpu",
        "progress=false",
        f"seed={arguments.seed}",
        f"output_dir={arguments.out / 'aipo_run'}",
        f"steps={arguments.warmup + arguments.steps}",
        f"model.name_or_path={arguments.out / 'model'}",
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
    phases: dict[str, list[float]] = {"rollout_s": [], "accuracy": [], "zero_variance_groups": []}

    def step_done(_: Trainer, metrics: dict[str, float]) -> None:
        gate.step_done()
        phases["rollout_s"].append(metrics["perf/rollout_s"])
        phases["accuracy"].append(metrics["rollout/accuracy"])
        phases["zero_variance_groups"].append(metrics["rollout/zero_variance_groups"])
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
    phases: dict[str, list[float]] = {"rollout_s": [], "accuracy": [], "zero_variance_groups": []}
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
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                phases["rollout_s"].append(time.perf_counter() - started)

    config = GRPOConfig(
        output_dir=str(arguments.out / "trl_run"),
        use_cpu=True,
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
        # TRL's defaults are bf16 autocast and gradient checkpointing; ours (on CPU) are neither.
        bf16=False,
        gradient_checkpointing=False,
    )
    trainer = TimedGRPOTrainer(
        model=str(arguments.out / "model"),
        reward_funcs=correctness,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(arguments.out / "model"),
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
    result = {"step_s": gate.step_s, "phases": phases, "peak_rss_gib": peak_rss_gib()}
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


class Worker:
    """One framework's worker process, driven line by line (see :class:`Gate`)."""

    def __init__(self, framework: str, arguments: argparse.Namespace) -> None:
        self.framework = framework
        self.log = open(arguments.out / f"{framework}.log", "w")  # noqa: SIM115  (closed in finish)
        command = [sys.executable, __file__, "--worker", framework, *sys.argv[1:]]
        environment = os.environ | {
            "OMP_NUM_THREADS": str(arguments.threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=environment,
        )

    def expect(self, prefix: str) -> str:
        """Read stdout up to the next line that starts with ``prefix``; return the rest of it."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"the {self.framework} worker stopped; see {self.log.name}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> dict[str, Any]:
        self.go()
        result = json.loads(self.expect("RESULT "))
        self.process.wait()
        self.log.close()
        return result


def run_round(arguments: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """All workers, one step each in turn (the order rotates every step); returns their results."""
    workers = {framework: Worker(framework, arguments) for framework in FRAMEWORKS}
    for worker_ in workers.values():
        worker_.expect("READY")
    for step in range(arguments.warmup + arguments.steps):
        turn = step % len(FRAMEWORKS)
        for framework in FRAMEWORKS[turn:] + FRAMEWORKS[:turn]:
            workers[framework].go()
            workers[framework].expect("READY")
    return {framework: worker_.finish() for framework, worker_ in workers.items()}


def summarise(runs: dict[str, list[dict[str, Any]]], warmup: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for framework, results in runs.items():
        steps = [step for result in results for step in result["step_s"][warmup:]]
        entry = {
            "median_step_s": statistics.median(steps),
            "step_s": steps,
            "peak_rss_gib": max(result["peak_rss_gib"] for result in results),
        }
        for phase in ("rollout_s", "update_s", "accuracy", "zero_variance_groups"):
            values = [value for result in results for value in result["phases"].get(phase, [])[warmup:]]
            if values and phase.endswith("_s"):
                entry[f"median_{phase}"] = statistics.median(values)
            elif values:
                entry[f"mean_{phase}"] = statistics.mean(values)
        summary[framework] = entry
    for ours in ("aipo", "aipo-noskip"):
        summary[f"{ours}/trl"] = {
            "time": summary[ours]["median_step_s"] / summary["trl"]["median_step_s"],
            "rollout": summary[ours]["median_rollout_s"] / summary["trl"]["median_rollout_s"],
            "update": summary[ours]["median_update_s"] / summary["trl"]["median_update_s"],
            "memory": summary[ours]["peak_rss_gib"] / summary["trl"]["peak_rss_gib"],
        }
    return summary


def prepare_model(arguments: argparse.Namespace) -> Path:
    """The tiny model after its supervised warm-up, saved once (reused while the settings match)."""
    import gymnasium as gym
    import torch

    from aipo.demonstrations import demonstrate
    from algorithms.sft import SFTSettings, supervised_warmup
    from policies.hf import HFPolicy
    from policies.tiny import save_tiny

    directory = arguments.out / "model"
    settings = {
        "level": arguments.level,
        "sft_steps": arguments.sft_steps,
        "sft_examples": arguments.sft_examples,
        "seed": arguments.seed,
    }
    stamp = directory / "warmup.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return directory
    save_tiny(directory, seed=arguments.seed)
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
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    if importlib.util.find_spec("trl") is None:
        raise SystemExit('this benchmark needs TRL: pip install -e ".[bench]" (or pip install "trl>=1.16")')
    prepare_model(arguments)
    runs: dict[str, list[dict[str, Any]]] = {framework: [] for framework in FRAMEWORKS}
    for round_ in range(arguments.rounds):
        for framework, result in run_round(arguments).items():
            runs[framework].append(result)
        print(f"round {round_ + 1} of {arguments.rounds} done", flush=True)
    summary = summarise(runs, arguments.warmup)
    summary.update(command=" ".join(["python", *sys.argv]), versions=versions(), machine=machine())
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "trl_side_by_side.json").write_text(json.dumps(summary, indent=2))
    for framework in FRAMEWORKS:
        entry = summary[framework]
        phases = "".join(
            f"  {phase.removeprefix('median_')} {entry[phase]:.3f}"
            for phase in ("median_rollout_s", "median_update_s")
            if phase in entry
        )
        rewards = "".join(
            f"  {name.removeprefix('mean_')} {entry[name]:.2f}"
            for name in ("mean_accuracy", "mean_zero_variance_groups")
            if name in entry
        )
        print(
            f"{framework:>11}: {entry['median_step_s']:.3f} s/step  peak RSS {entry['peak_rss_gib']:.2f} GiB"
            f"{phases}{rewards}"
        )
    for ours in ("aipo", "aipo-noskip"):
        ratio = summary[f"{ours}/trl"]
        print(
            f"{ours} / TRL: time {ratio['time']:.2f}x (rollout {ratio['rollout']:.2f}x, update "
            f"{ratio['update']:.2f}x)  memory {ratio['memory']:.2f}x"
        )
    print(json.dumps({"versions": summary["versions"], "machine": summary["machine"]}))


if __name__ == "__main__":
    main()
