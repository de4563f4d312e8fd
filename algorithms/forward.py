"""Per-token log-probs (and entropy) of given tokens under a model: one forward pass, or two
when a group of episodes shares its prompt (the prompt's keys and values are computed once).

:func:`token_logprobs` is what the learners call; the loss pieces that use its output are the
pure functions of :mod:`algorithms.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from policies.kv_cache import cache_argument


def token_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    share_prefix: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log pi(x_t | x_<t)`` of every token of right-padded sequences.

        logprob_t = log softmax(logits_{t-1} / temperature)[x_t]      (t >= 1; position 0 gets 0)
        entropy_t = -sum_v p_v log p_v  of that same distribution

    The temperature is the one used for sampling, so that the learner's probabilities are those
    the behaviour log-probs were taken from.

    With ``share_prefix`` rows that begin with the same tokens (the episodes of one GRPO group
    share their prompt) run that prefix once: a first pass over one copy of each shared prefix
    fills a KV cache, which is copied to every row of the group, and a second pass runs only the
    rows' own suffixes. Gradients flow through both passes, so values and gradients equal those
    of one pass over the whole rows (up to float rounding), for ``B * T`` tokens of work reduced
    by ``(group size - 1) * prefix length`` per group. A plain single pass is used when nothing is
    shared, under gradient checkpointing, and for DDP / FSDP-wrapped models (one forward per
    backward there).

    Returns:
        ``[B, T]`` log-probs and, if asked, ``[B, T]`` entropies (``None`` otherwise); padding
        positions hold values that carry no meaning.
    """
    if share_prefix and _can_share(model):
        groups = _prefix_groups(input_ids, attention_mask.bool())
        if groups is not None:
            return _shared_prefix_logprobs(
                model, input_ids, attention_mask.bool(), groups, temperature, with_entropy
            )
    logits = model(input_ids=input_ids, attention_mask=attention_mask.long(), use_cache=False).logits[:, :-1]
    picked, entropy = _pick(logits, input_ids[:, 1:], temperature, with_entropy)
    logprobs = torch.nn.functional.pad(picked, (1, 0))
    return logprobs, None if entropy is None else torch.nn.functional.pad(entropy, (1, 0))


def _pick(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` (and entropies) under ``softmax(logits / temperature)``, per position."""
    log_softmax = _log_softmax(logits, temperature)
    picked = log_softmax.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return picked, None
    return picked, -(log_softmax.exp() * log_softmax).sum(dim=-1)


def _can_share(model: torch.nn.Module) -> bool:
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return False
    fsdp_module = (
        getattr(torch.distributed.fsdp, "FSDPModule", None) if torch.distributed.is_available() else None
    )
    if fsdp_module is not None and isinstance(model, fsdp_module):
        return False
    # transformers 5 renamed is_gradient_checkpointing (the old name still works, with a warning).
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(base), name):
            return not getattr(base, name)
    return True


@dataclass
class _Groups:
    """Rows that share a prefix: ``group[b]`` is row ``b``'s group, ``length[g]`` its shared tokens."""

    group: list[int]
    length: list[int]
    first_row: list[int]


def _prefix_groups(input_ids: torch.Tensor, mask: torch.Tensor) -> _Groups | None:
    """Groups of rows with a common prefix, chosen greedily to save the most tokens; ``None`` if none.

    A row's group is the set of rows whose common prefix with it, of length ``L``, maximises
    ``(members - 1) * L``; ``L`` stays below every member's length so that each row keeps at
    least one token of its own. A row that shares nothing is a group of one whose "prefix" is all
    but its last token.
    """
    rows = input_ids.shape[0]
    lengths = mask.sum(dim=1).cpu()
    if rows < 2 or int(lengths.min()) < 2:
        return None
    same = (input_ids[:, None, :] == input_ids[None, :, :]) & mask[:, None, :] & mask[None, :, :]
    common = same.long().cumprod(dim=-1).sum(dim=-1).cpu()  # [B, B] common prefix lengths
    group = torch.full((rows,), -1)
    length: list[int] = []
    first_row: list[int] = []
    # Rows with the longest common prefix with some other row choose first, so that a row sharing
    # only a few tokens with a group cannot pull that group's members away from their long prefix.
    longest_shared = (common - torch.diag(torch.diagonal(common))).max(dim=1).values
    for row in torch.argsort(longest_shared, descending=True, stable=True).tolist():
        if group[row] >= 0:
            continue
        free = group < 0
        saved, members, shared = 0, torch.tensor([row]), int(lengths[row]) - 1
        for candidate in sorted(set(common[row][free].tolist()) - {0}):
            chosen = (common[row] >= candidate) & free
            usable = min(candidate, int(lengths[chosen].min()) - 1)
            if (int(chosen.sum()) - 1) * usable > saved:
                saved, members, shared = (int(chosen.sum()) - 1) * usable, chosen.nonzero().squeeze(1), usable
        group[members] = len(length)
        length.append(shared)
        first_row.append(row)
    if len(length) == rows:
        return None
    return _Groups(group.tolist(), length, first_row)


def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    return torch.log_softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)


def _shared_prefix_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    groups: _Groups,
    temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`token_logprobs` in two passes: the groups' prefixes (left-padded), then every row's suffix.

    Row ``b`` of a group with ``L`` shared tokens takes the log-probs of its tokens ``1..L`` from
    the prefix pass (token ``L``, its first own token, is predicted by the prefix's last logits)
    and those of tokens ``L+1..`` from the suffix pass.
    """
    device, (rows, width) = input_ids.device, input_ids.shape
    prefix_width = max(groups.length)
    prefix_ids = input_ids.new_zeros((len(groups.length), prefix_width))
    prefix_mask = torch.zeros((len(groups.length), prefix_width), dtype=torch.long, device=device)
    for index, (row, length) in enumerate(zip(groups.first_row, groups.length, strict=True)):
        prefix_ids[index, prefix_width - length :] = input_ids[row, :length]
        prefix_mask[index, prefix_width - length :] = 1
    cache_name = cache_argument(model)
    first = model(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=(prefix_mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
    )
    group = torch.tensor(groups.group, device=device)
    cache = first[cache_name]
    cache.reorder_cache(group)  # every row gets its group's prefix keys and values (differentiably)

    shared = torch.tensor(groups.length, device=device)[group]  # [B]
    own = mask.sum(dim=1) - shared  # [B], at least 1
    columns = torch.arange(int(own.max()), device=device)[None, :]
    suffix_mask = columns < own[:, None]
    suffix_ids = input_ids.gather(1, (shared[:, None] + columns).clamp(max=width - 1)) * suffix_mask
    second = model(
        input_ids=suffix_ids,
        attention_mask=torch.cat([prefix_mask[group], suffix_mask.long()], dim=1),
        position_ids=shared[:, None] + columns,
        use_cache=True,
        **{cache_name: cache},
    )

    prefix_columns = torch.arange(prefix_width, device=device)[None, :]
    prefix_positions = prefix_columns + 1 - (prefix_width - shared[:, None])  # [B, prefix_width]
    prefix_valid = (prefix_positions >= 1) & (prefix_positions <= shared[:, None])
    prefix_targets = input_ids.gather(1, prefix_positions.clamp(min=0, max=width - 1))
    prefix_log_softmax = _log_softmax(first.logits, temperature)  # [groups, prefix_width, V]
    prefix_picked = prefix_log_softmax[group[:, None], prefix_columns, prefix_targets]
    suffix_positions = shared[:, None] + columns + 1
    suffix_valid = columns + 1 < own[:, None]
    suffix_targets = input_ids.gather(1, suffix_positions.clamp(max=width - 1))
    suffix_log_softmax = _log_softmax(second.logits, temperature)
    suffix_picked = suffix_log_softmax.gather(-1, suffix_targets.unsqueeze(-1)).squeeze(-1)

    row_index = torch.arange(rows, device=device)[:, None]
    prefix_at = (row_index.expand_as(prefix_positions)[prefix_valid], prefix_positions[prefix_valid])
    suffix_at = (row_index.expand_as(suffix_positions)[suffix_valid], suffix_positions[suffix_valid])

    def assemble(prefix_values: torch.Tensor, suffix_values: torch.Tensor) -> torch.Tensor:
        out = prefix_values.new_zeros((rows, width)).index_put(prefix_at, prefix_values[prefix_valid])
        return out.index_put(suffix_at, suffix_values[suffix_valid])

    logprobs = assemble(prefix_picked, suffix_picked)
    if not with_entropy:
        return logprobs, None
    prefix_entropy = -(prefix_log_softmax.exp() * prefix_log_softmax).sum(dim=-1)[group]
    suffix_entropy = -(suffix_log_softmax.exp() * suffix_log_softmax).sum(dim=-1)
    return logprobs, assemble(prefix_entropy, suffix_entropy)
