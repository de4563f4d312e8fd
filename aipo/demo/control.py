"""The learnability control: supervised training on worked solutions, at the RL arm's helper-token count.

If the model cannot learn the skill from text that shows it, no RL arm's null result says
anything about the method. The control trains the same warm-up by cross-entropy
(:mod:`algorithms.sft`) on the reference solutions of the arms' *train* problems, played alone
(``Step 1: 7 + 7 = 14`` ... ``\\boxed{N}``), for as many solution tokens as the matched RL arm
had helper tokens:

    steps = ceil(helper_tokens / (batch_size * mean solution tokens))

``helper_tokens`` counts whole helper replies, ``<feedback>`` wrapper included (a Reasoning
reply of 58 tokens holds a step of about 17), either those the arm learned from (``learned``:
``charts/agent_tokens_learned``, the replies of its better-than-average episodes) or all those
in its batches (``seen``). Every control token is solution text, so per token the control reads
more of the skill than a reply shows; the match bounds its budget, it does not equalise it.

With ``steps`` set (the arm's ``steps``) the control trains that many steps instead, for example
as many solutions as an RL arm plays episodes, where the matched helper tokens are too few to
show that the model can learn the skill at all (the real-model experiment, examples/real_rule.yaml).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym

from algorithms.batch import POLICY
from algorithms.config import TrainConfig
from algorithms.models import load_policy, resolve_device, save_merged
from algorithms.run_log import read_metrics
from algorithms.sft import SFTSettings, supervised_warmup, tokenize_demonstration
from policies.demonstrations import warmup_demonstrations


def helper_tokens(run: TrainConfig, which: str = "learned") -> int:
    """The helper tokens of the finished run ``run`` (from its metrics.jsonl): ``learned`` or ``seen``.

    ``seen``: ``rollout/agent_tokens`` (a mean per episode) times the episodes of each step.
    """
    rows = read_metrics(run.output_dir / "metrics.jsonl")
    if which == "learned":
        return round(sum(row.get("charts/agent_tokens_learned", 0.0) for row in rows))
    episodes = run.rollout.problems_per_step * run.rollout.group_size
    return round(sum(row.get("rollout/agent_tokens", 0.0) * episodes for row in rows))


def train_control(
    run: TrainConfig,
    warmup: Path | str,
    tokens: int,
    lr: float,
    batch_size: int,
    directory: Path,
    progress: bool,
    steps: int | None = None,
) -> dict[str, Any]:
    """Train the control from ``warmup`` on about ``tokens`` solution tokens of ``run``'s train env; save to ``directory/final``.

    ``steps``: train exactly this many steps instead (module docstring).
    """
    kwargs = {key: value for key, value in run.env.kwargs.items() if key not in ("consult", "consult_cost")}
    count = _problem_count(run.env.id, kwargs)
    records = warmup_demonstrations(kwargs, count, 0.0, seed=run.seed, env_id=run.env.id)
    model = run.model.model_copy(update={"name_or_path": str(warmup)})
    policy = load_policy(model, resolve_device(run.device))
    learned = [tokenize_demonstration(policy, record).sources.count(POLICY) for record in records]
    per_solution = sum(learned) / len(learned)
    if steps is None:
        steps = max(1, math.ceil(tokens / (batch_size * max(per_solution, 1.0))))
    settings = SFTSettings(steps=steps, batch_size=batch_size, lr=lr, seed=run.seed, progress=progress)
    history = supervised_warmup(policy, records, settings)
    save_merged(policy, directory / "final")  # a plain model, as the rl arms': it loads wherever it moves
    return {
        "matched_helper_tokens": tokens,
        "solution_tokens": round(steps * batch_size * per_solution),
        "steps": steps,
        "sft_loss": [point["loss"] for point in history],
    }


def _problem_count(env_id: str, kwargs: dict[str, Any]) -> int:
    env = gym.make(env_id, **kwargs)
    count = len(env.unwrapped.task)
    env.close()
    return count
