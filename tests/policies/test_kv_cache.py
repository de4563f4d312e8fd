"""The reserved KV cache gives the decoding loop exactly the logits of transformers' own cache."""

from __future__ import annotations

import torch

from policies.kv_cache import ReservedLayer, reserve
from policies.tiny import build_tiny_model, build_tokenizer


def decode(reserved: bool, capacity: int) -> torch.Tensor:
    torch.set_num_threads(1)
    model = build_tiny_model(build_tokenizer(), seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 200, (3, 7), generator=generator)
    steps = torch.randint(3, 200, (3, 6), generator=generator)
    with torch.inference_mode():
        output = model(input_ids=prompt, use_cache=True)
        cache = output["cache"] if "cache" in output else output["past_key_values"]
        cache.reorder_cache(torch.tensor([0, 0, 1, 2]))  # a row repeated, as for a GRPO group
        if reserved:
            assert reserve(cache, capacity)
            assert all(isinstance(layer, ReservedLayer) for layer in cache.layers)
        rows, logits = torch.tensor([0, 0, 1, 2]), []
        for step in range(steps.shape[1]):
            if step == 3:  # a row leaves the batch
                rows = rows[[0, 1, 3]]
                cache.reorder_cache(torch.tensor([0, 1, 3]))
            position = torch.full((len(rows), 1), 7 + step)
            name = "cache" if "cache" in output else "past_key_values"
            out = model(input_ids=steps[rows, step, None], position_ids=position, **{name: cache})
            logits.append(out.logits[:, -1])
    return torch.cat(logits)


def test_reserved_cache_gives_the_same_logits_as_the_dynamic_cache() -> None:
    plain = decode(reserved=False, capacity=0)
    assert torch.equal(decode(reserved=True, capacity=13), plain)
    assert torch.equal(decode(reserved=True, capacity=9), plain)  # outgrows its room: buffers grow
