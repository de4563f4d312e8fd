"""Supervised warm-up on worked solutions, so that two tiny models start with different strengths.

GRPO learns nothing from a model that never solves a problem (every group has reward 0), and a
freshly initialised tiny model never does. ILR's experiment therefore starts from two models
fine-tuned on the task's reference solutions for different numbers of steps. The loss is the
mean negative log-likelihood of the target tokens (solution steps, the boxed answer and EOS)
given the prompt exactly as the single-player env shows it:

    L = -1/|target| sum_{t in target} log pi(x_t | x_<t)

(The AIPO demo may grow a general ``algorithms/sft.py``; this one is ILR's own, kept small.)
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from aipo_env.tasks.base import Problem, Task
from algorithms.losses import token_logprobs
from policies.hf import HFPolicy


def worked_solution(problem: Problem) -> str:
    """The target text: one line per reference step, then the boxed answer."""
    return "".join(f"{step}\n" for step in problem.steps) + f"\\boxed{{{problem.answer}}}"


def warm_up(
    policy: HFPolicy,
    task: Task,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fine-tune ``policy`` in place on ``task``'s worked solutions; returns the loss of every step.

    Args:
        policy: the model to train (its tokenizer encodes prompt and target).
        task: problems with reference ``steps`` (e.g. the built-in arithmetic family).
        steps: optimizer steps (0 leaves the model as it is).
        batch_size: problems per step, drawn with ``seed``.
        lr: AdamW learning rate.
        seed: which problems are drawn.
        progress: show a progress bar.
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps} and {batch_size}")
    model = policy.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    eos = policy.eos_token_ids[0]
    losses: list[float] = []
    for _ in tqdm(range(steps), desc="warm-up", disable=not progress):
        indices = torch.randint(len(task), (batch_size,), generator=generator).tolist()
        rows = []
        for index in indices:
            problem = task.problem(index)
            prompt = policy.encode_prompt(task.prompt(problem) + "\n")
            rows.append((prompt, [*policy.encode_text(worked_solution(problem)), eos]))
        width = max(len(prompt) + len(target) for prompt, target in rows)
        input_ids = torch.full((len(rows), width), policy.pad_token_id, dtype=torch.long)
        target_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        attention = torch.zeros((len(rows), width), dtype=torch.bool)
        for row, (prompt, target) in enumerate(rows):
            ids = prompt + target
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = True
            target_mask[row, len(prompt) : len(ids)] = True
        device = policy.device
        logprobs, _ = token_logprobs(model, input_ids.to(device), attention.to(device))
        mask = target_mask.to(device)
        loss = -(logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
