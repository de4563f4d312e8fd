"""Settings of ``aipo demo``: one YAML file (``examples/demo.yaml``) plus the arms' train configs.

The RL arms are ordinary ``aipo train`` configs (``examples/demo_rule.yaml`` with each arm's
overrides); the demo sets their seed, starting model and output directory and applies
``rl_overrides`` (the quick preset shortens them), so every arm can be rerun by hand::

    aipo train examples/demo_rule.yaml model.name_or_path=warmup:arithmetic

A ``kind: sft`` arm is the learnability control: supervised training on worked solutions of the
arms' train problems, as many solution tokens as the helper tokens that arm ``match`` saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from aipo.bundled import EXAMPLES  # noqa: F401 - where the demo configs live, for callers
from algorithms.config import AGENT_MODES, ModelConfig, TrainConfig, _Strict, load_config  # noqa: F401


class WarmupConfig(_Strict):
    """Supervised warm-up on easy levels (it fixes the model's capability boundary).

    By default every seed starts from the shipped model trained once by this recipe
    (``source: shipped``). With ``source: fresh`` a warm-up is trained per seed from ``model`` of the
    demo config: the fresh tiny model, or a saved one (``model.name_or_path=DIR``) to continue. With
    ``source: shared`` one such warm-up is trained once (with seed ``shared_seed``) into
    ``output_dir/warmup`` and every seed starts from it, as every seed starts from the shipped model.
    """

    levels: tuple[int, int] = Field((1, 2), description="Inclusive range of arithmetic levels shown.")
    demonstrations: int = Field(20000, ge=1, description="Demonstration episodes (problems 0..N-1).")
    consult_share: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of demonstrations that consult the Reasoning agent."
    )
    consult_style: Literal["subset", "until_done"] = Field(
        "subset",
        description="subset: ask for a random set of steps; until_done: ask for every step from a random "
        "one on, and once more until the agent says all steps are written (policies/demonstrations.py).",
    )
    hard_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of demonstrations that solve a train problem of the evaluation's arithmetic "
        "level alone (only when the evaluation env is aipo/Arithmetic-v0). A small share keeps the hard "
        "skill rare but reachable.",
    )
    steps: int = Field(1000, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-3, gt=0.0, description="Peak learning rate (cosine decay).")
    source: Literal["shipped", "fresh", "shared"] = Field(
        "shipped",
        description="shipped: start every seed from the shipped model `shipped` (trained once by this "
        "section's recipe, seed 0; see policies/shipped.py); fresh: train a warm-up per seed as above "
        "(`aipo demo --warmup fresh`); shared: train one as above, with seed `shared_seed`, into "
        "output_dir/warmup, and start every seed from it (seeds then vary the arms only).",
    )
    shared_seed: int = Field(0, description="source shared: the seed of the one warm-up.")
    shipped: str = Field("arithmetic", description="The shipped warm-up's name (warmup:NAME).")


class DemoEvalConfig(_Strict):
    """Evaluation alone (consults off) on the held-out split and the shifted split, with 95% intervals.

    A sample of N problems is spread evenly over its split (:func:`algorithms.evaluation.spread_problems`),
    the same problems for every model and seed.
    """

    problems: int | None = Field(
        None,
        ge=1,
        description="Test-split problems of the evaluation env (the first arm's): null, every one; "
        "N, N of them spread over the split.",
    )
    samples: int = Field(16, ge=1, description="Episodes per problem (pass@k for k = 1..samples).")
    shifted: dict[str, Any] = Field(
        default_factory=dict,
        description="The shifted split: these keywords over the evaluation env's, e.g. {operations: 3} "
        "(longer chains than any train problem, test split); empty: none.",
    )
    shifted_problems: int | None = Field(
        300, ge=1, description="Problems of the shifted split (null: every one), spread over it."
    )
    bootstrap: int = Field(
        10_000, ge=100, description="Bootstrap resamples of the 95% intervals (algorithms/bootstrap.py)."
    )
    easy_problems: int = Field(
        32, ge=1, description="Test-split problems of the easy levels (warm-up check)."
    )
    curve_every: int = Field(10, ge=0, description="Held-out accuracy every N RL steps (0 = off).")
    curve_problems: int = Field(
        24, ge=1, description="Problems of each learning-curve point (and key-token problems, rule task)."
    )
    curve_samples: int = Field(4, ge=1, description="Episodes per problem of each curve point.")
    batch_size: int = Field(256, ge=1, description="Episodes played at once.")


class ArmConfig(_Strict):
    """One arm: an RL run (an `aipo train` config and overrides on top of it) or the supervised control."""

    kind: Literal["rl", "sft"] = Field("rl", description="rl: an `aipo train` run; sft: the control.")
    config: Path | None = Field(
        None, description="rl: the arm's train YAML (relative: from the demo YAML's folder)."
    )
    overrides: list[str] = Field(default_factory=list, description="rl: key=value overrides of this arm.")
    match: str | None = Field(
        None,
        description="sft: train on as many solution tokens as this earlier RL arm saw helper tokens.",
    )
    tokens: Literal["learned", "seen"] = Field(
        "learned",
        description="sft: match the helper tokens the rl arm `match` learned from (charts/agent_tokens_learned) "
        "or all the helper tokens in its batches (rollout/agent_tokens); both count whole replies.",
    )
    lr: float = Field(2e-3, gt=0.0, description="sft: peak learning rate (cosine decay).")
    batch_size: int = Field(32, ge=1, description="sft: solutions per step.")
    steps: int | None = Field(
        None,
        ge=1,
        description="sft: train this many steps instead of matching `match`'s helper tokens (null: match).",
    )

    @model_validator(mode="after")
    def _complete(self) -> ArmConfig:
        if self.kind == "rl" and self.config is None:
            raise ValueError("an rl arm needs `config` (its train YAML)")
        if self.kind == "sft" and self.match is None:
            raise ValueError("an sft arm needs `match` (the RL arm whose helper tokens it matches)")
        if self.kind == "sft" and (self.config is not None or self.overrides):
            raise ValueError("an sft arm takes no `config` or `overrides` (it trains from `match`'s run)")
        if self.kind == "rl" and self.steps is not None:
            raise ValueError("`steps` is for sft arms; an rl arm's steps are in its `config`")
        if self.kind == "rl" and self.match is not None:
            raise ValueError("`match` is for sft arms; an rl arm is its `config` and `overrides`")
        return self


class DemoConfig(_Strict):
    """Everything ``aipo demo`` reads."""

    output_dir: Path = Field(Path("results/demo"), description="Where every result goes.")
    seeds: list[int] = Field([0], min_length=1, description="One full pipeline per seed.")
    device: Literal["cpu", "auto", "cuda"] = Field(
        "cpu",
        description="Where every model is warmed up, trained and evaluated: cpu (the measured results; "
        "reruns repeat them on one machine), auto (a GPU when there is one) or cuda.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The model warmed up and trained.")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    arms: dict[str, ArmConfig] = Field(
        description="Arm name -> its train config, in the order run; every arm starts from the same "
        "warm-up. The first arm must be an rl arm: its env (split test) is the evaluation env.",
    )
    warmup_from: Path | None = Field(
        None,
        description="Reuse the warm-up models of an earlier demo in this directory (its seed-N/warmup, "
        "or its warmup with warmup.source shared) instead of training new ones; a seed without one is "
        "warmed up as usual.",
    )
    reuse_seeds: bool = Field(
        False,
        description="Take a seed's results from output_dir/seed-N/seed.json when a finished run left one "
        "there (e.g. seeds run in parallel processes), instead of running it again.",
    )
    rl_overrides: list[str] = Field(
        default_factory=list, description="key=value overrides applied to every arm (e.g. steps=5)."
    )
    eval: DemoEvalConfig = Field(default_factory=DemoEvalConfig)
    threads: int = Field(1, ge=1, description="Torch CPU threads (1 is fastest for the tiny model).")
    progress: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> DemoConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        names = list(self.arms)
        if not names or self.arms[names[0]].kind != "rl":
            raise ValueError("the first arm must be an rl arm (its env is the evaluation env)")
        for position, (name, arm) in enumerate(self.arms.items()):
            earlier = [other for other in names[:position] if self.arms[other].kind == "rl"]
            if arm.kind == "sft" and arm.match not in earlier:
                raise ValueError(
                    f"arm {name!r}: match={arm.match!r} must name an earlier rl arm, one of {earlier}"
                )
        return self


def load_demo_config(path: Path, overrides: list[str] | None = None) -> DemoConfig:
    """Read a demo YAML; arm paths are resolved against the YAML's folder."""
    config = load_config(DemoConfig, path, overrides)
    arms = {
        name: arm.model_copy(update={"config": path.parent / arm.config})
        if arm.config is not None and not arm.config.is_absolute()
        else arm
        for name, arm in config.arms.items()
    }
    return config.model_copy(update={"arms": arms})


def ablation_config(config: DemoConfig, modes: list[str]) -> DemoConfig:
    """``config`` with one arm per helper-token mode, all from the AIPO arm, written to ``<output_dir>_ablation``."""
    unknown = [mode for mode in modes if mode not in AGENT_MODES]
    if unknown:
        raise ValueError(f"unknown agent modes {unknown}; choose from {', '.join(AGENT_MODES)}")
    base = config.arms.get("aipo") or next(iter(config.arms.values()))
    assert base.config is not None  # the first arm is an rl arm
    arms = {
        mode: ArmConfig(config=base.config, overrides=[*base.overrides, f"loss.agent_mode={mode}"])
        for mode in modes
    }
    directory = config.output_dir.with_name(f"{config.output_dir.name}_ablation")
    warmup_from = config.warmup_from or config.output_dir
    return config.model_copy(update={"arms": arms, "output_dir": directory, "warmup_from": warmup_from})


def arm_config(demo: DemoConfig, arm: str, seed: int, warmup: Path | str) -> TrainConfig:
    """The train config of rl arm ``arm`` for ``seed``, starting from the warm-up model ``warmup``."""
    spec = demo.arms[arm]
    if spec.config is None:
        raise ValueError(f"arm {arm!r} is not an rl arm")
    overrides = [
        *demo.rl_overrides,
        *spec.overrides,
        f"seed={seed}",
        f"model.name_or_path={warmup}",
        f"output_dir={demo.output_dir / f'seed-{seed}' / arm}",
        f"progress={str(demo.progress).lower()}",
        f"device={demo.device}",
    ]
    return load_config(TrainConfig, spec.config, overrides)


def rl_arms(demo: DemoConfig) -> list[str]:
    """The names of the rl arms, in order."""
    return [name for name, arm in demo.arms.items() if arm.kind == "rl"]


def eval_env(demo: DemoConfig) -> dict:
    """``{"id", "kwargs"}`` of the held-out evaluation: the first arm's env on its test split.

    Recorded in ``demo.json`` under ``settings.demo.eval_env``, so any saved model can be
    re-evaluated with ``aipo eval`` on other problems of the same split.
    """
    first = arm_config(demo, rl_arms(demo)[0], demo.seeds[0], "warmup")
    return {"id": first.env.id, "kwargs": {**first.env.kwargs, "split": "test"}}


def eval_splits(demo: DemoConfig) -> dict[str, tuple[dict, int | None]]:
    """The splits every model is evaluated on: name -> (``{"id", "kwargs"}``, problems).

    ``held_out`` is :func:`eval_env`; ``shifted`` (when ``eval.shifted`` is set) is the same env with
    ``eval.shifted`` over its keywords, recorded as ``settings.demo.shifted_env``.
    """
    held_out = eval_env(demo)
    splits = {"held_out": (held_out, demo.eval.problems)}
    if demo.eval.shifted:
        shifted = {"id": held_out["id"], "kwargs": {**held_out["kwargs"], **demo.eval.shifted}}
        splits["shifted"] = (shifted, demo.eval.shifted_problems)
    return splits
