"""The demo's learning curves: held-out accuracy alone and the log-prob of the skill's key tokens.

For the rule task (:mod:`aipo_env.tasks.arithmetic_rule`) the skill is "double it: write
``v + v``". Its key tokens are those of ``v + v`` in the first step of a problem that starts by
doubling ``v``. Their log-probability is measured in two contexts:

* **alone**: the prompt, then ``Step 1: `` written by the model itself (as in evaluation);
* **in a helper reply**: the prompt, a consult of the Reasoning agent and its reply up to
  ``Step 1: `` (as in a consulting training episode, where AIPO learns the reply's tokens).

``log p(key | context) = sum_t log pi_theta(key_t | context, key_<t)``, averaged over problems.
A rise in the reply that does not show alone means the helper-token learning stays tied to
the feedback context. The own-voice arm (``loss.agent_mode=own_voice``, :mod:`algorithms.own_voice`)
learns a guided episode's reply in the first context: the prompt, then the reply where the policy
writes (``Step 1: v + v = ...``), the same tokens for the shipped byte-level warm-up; the second is
then context it never learns in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch

from algorithms.evaluation import evaluate, spread_problems
from algorithms.forward import token_logprobs
from policies.hf import HFPolicy

RULE_ENV = "aipo/ArithmeticRule-v0"
CONSULT = '<consult agent="reasoning">next step</consult>'


class HeldOutCurve:
    """A trainer callback: held-out accuracy alone (consults off) every ``every`` steps, and key-token log-probs.

    The evaluation runs under a forked torch random state seeded by ``(seed, step)``, so the
    training run is the same with or without the curve and every arm is measured alike. Its
    ``problems`` are spread over the split (:func:`~algorithms.evaluation.spread_problems`).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        problems: int,
        samples: int,
        every: int,
        seed: int = 0,
        batch_size: int = 256,
    ) -> None:
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs)
        self.problems = spread_problems(env_id, env_kwargs, problems)
        self.samples, self.every, self.seed = samples, every, seed
        self.batch_size = batch_size
        self.points: list[dict[str, float]] = []
        self.key_contexts = key_contexts(env_kwargs, problems) if env_id == RULE_ENV else []

    def measure(self, policy: HFPolicy, step: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + step)
            result = evaluate(
                policy, self.env_id, self.env_kwargs, problems=self.problems, samples=self.samples,
                batch_size=self.batch_size, progress=False,
            )  # fmt: skip
        point = {"step": step, "accuracy": result.accuracy}
        if self.key_contexts:
            point.update(key_logprobs(policy, self.key_contexts))
        self.points.append(point)

    def __call__(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.every and (trainer.step % self.every == 0 or trainer.step == trainer.config.steps):
            self.measure(trainer.policy, trainer.step)


def key_contexts(env_kwargs: Mapping[str, Any], problems: int) -> list[dict[str, Any]]:
    """For ``problems`` test problems that start by doubling, spread over those of the split: the prompt,
    the segments after it (alone: ``Step 1: ``; in a reply: the consult, then the reply up to
    ``Step 1: ``) and the key text."""
    kwargs = {**env_kwargs, "split": "test"}
    alone = gym.make(RULE_ENV, **{**kwargs, "consult": "off"})
    consulting = gym.make(RULE_ENV, **{**kwargs, "consult": "agents"})
    task = alone.unwrapped.task
    doubling = [i for i in range(len(task)) if task.problem(i).metadata["operations"][0][0] == "double"]
    count = min(problems, len(doubling))
    found = []
    for index in [doubling[j * len(doubling) // count] for j in range(count)]:
        problem = task.problem(index)
        key = problem.steps[0].split(" =")[0]  # "v + v"
        prompt, _ = alone.reset(options={"index": index})
        consulting.reset(options={"index": index})
        transcript, *_ = consulting.step(CONSULT)
        start = len(prompt) + len(CONSULT)
        reply = transcript[start : transcript.index("Step 1: ", start) + len("Step 1: ")]
        found.append({"prompt": prompt, "alone": ["Step 1: "], "in_reply": [CONSULT, reply], "key": key})
    alone.close()
    consulting.close()
    return found


@torch.no_grad()
def key_logprobs(policy: HFPolicy, contexts: list[dict[str, Any]]) -> dict[str, float]:
    """Mean ``log p(key | context)`` in nats, alone and inside the helper reply (module docstring).

    The context is encoded segment by segment as in a rollout (the prompt, the consult turn, the
    reply), the key on its own: exact for a byte-level tokenizer such as the shipped warm-up's;
    with a subword tokenizer it is the log-prob of the key's own tokenization.
    """
    sums = {"key_logprob_alone": 0.0, "key_logprob_in_reply": 0.0}
    for item in contexts:
        for name, segments in (
            ("key_logprob_alone", item["alone"]),
            ("key_logprob_in_reply", item["in_reply"]),
        ):
            context = policy.encode_prompt(item["prompt"])
            for segment in segments:
                context = context + policy.encode_text(segment)
            key = policy.encode_text(item["key"])
            ids = torch.tensor([context + key], device=policy.device)
            logprobs, _ = token_logprobs(policy.model, ids, torch.ones_like(ids))
            sums[name] += float(logprobs[0, len(context) :].sum())
    return {name: total / max(len(contexts), 1) for name, total in sums.items()}
