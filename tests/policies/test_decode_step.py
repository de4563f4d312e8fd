"""Our one-token decoding step gives exactly the logits of the transformers forward, or steps aside."""

from __future__ import annotations

import logging

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from policies import HFPolicy
from policies.decode_step import decode_step, unsupported_reason
from policies.kv_cache import reserve
from policies.tiny import build_tiny_model, build_tokenizer

TOKENIZER = build_tokenizer()


def tiny_qwen3() -> Qwen3ForCausalLM:
    config = Qwen3Config(
        vocab_size=len(TOKENIZER), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    return Qwen3ForCausalLM(config)


MODELS = {
    "qwen2": lambda: build_tiny_model(TOKENIZER, architecture="qwen2", seed=0),
    "llama": lambda: build_tiny_model(TOKENIZER, architecture="llama", seed=1),
    "qwen3": tiny_qwen3,
}


def decode(model: torch.nn.Module, ours: bool, padded: bool) -> torch.Tensor:
    """Logits of 6 decoding steps after a prefill, with a row repeated and later one dropped."""
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 200, (3, 7), generator=generator)
    steps = torch.randint(3, 200, (3, 6), generator=generator)
    mask = torch.ones_like(prompt)
    if padded:
        mask[1, :3] = 0  # row 1 is a shorter context, left-padded
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    step = decode_step(model) if ours else None
    with torch.inference_mode():
        output = model(input_ids=prompt, attention_mask=mask, position_ids=positions, use_cache=True)
        name = "cache" if "cache" in output else "past_key_values"
        cache, rows = output[name], torch.tensor([0, 0, 1, 2])
        cache.reorder_cache(rows)  # a row repeated, as for a GRPO group
        reserve(cache, 20)
        mask, position, logits = mask[rows], positions[rows, -1:] + 1, []
        for index in range(steps.shape[1]):
            if index == 3:  # a row leaves the batch
                keep = torch.tensor([0, 1, 3])
                rows, mask, position = rows[keep], mask[keep], position[keep]
                cache.reorder_cache(keep)
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            token = steps[rows, index, None]
            if step is not None:
                out = step(token, position, cache, mask if padded else None)
            else:
                out = model(
                    input_ids=token, attention_mask=mask if padded else None, position_ids=position,
                    use_cache=True, **{name: cache},
                ).logits  # fmt: skip
            logits.append(out[:, -1])
            position = position + 1
    return torch.cat(logits)


@pytest.mark.parametrize("architecture", sorted(MODELS))
@pytest.mark.parametrize("padded", [False, True], ids=["equal-lengths", "left-padded"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_the_step_gives_the_transformers_logits_bit_for_bit(
    architecture: str, padded: bool, dtype: torch.dtype
) -> None:
    model = MODELS[architecture]().to(dtype).eval()
    assert unsupported_reason(model) is None
    assert torch.equal(decode(model, ours=True, padded=padded), decode(model, ours=False, padded=padded))


def test_sampling_is_the_same_with_and_without_the_step() -> None:
    model = build_tiny_model(TOKENIZER, seed=0)
    contexts = [list(range(5, 40))] * 3 + [list(range(7, 30))] * 2 + [list(range(9, 45))]
    results = []
    for fast in (True, False):
        policy = HFPolicy(model, TOKENIZER, max_new_tokens=24, stop=tuple("abcdef"), fast_decode=fast)
        torch.manual_seed(3)
        results.append(policy.generate(contexts))
    assert results[0] == results[1]
    lengths = {len(action.token_ids) for action in results[0]}
    assert len(lengths) > 2 and max(lengths) == 24  # rows stopped at different steps, padded rows left


def test_the_step_reads_the_weights_as_they_are_now() -> None:
    model = build_tiny_model(TOKENIZER, seed=0).eval()
    step = decode_step(model)
    before = decode(model, ours=True, padded=False)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(1.5)  # an optimizer step would do the same
    assert step is not None and not torch.equal(decode(model, ours=True, padded=False), before)
    assert torch.equal(decode(model, ours=True, padded=False), decode(model, ours=False, padded=False))


def sliding_qwen2() -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(TOKENIZER), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True, sliding_window=8,
        max_window_layers=0,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


def test_models_it_does_not_know_use_their_own_forward(caplog: pytest.LogCaptureFixture) -> None:
    eager = build_tiny_model(TOKENIZER, seed=0)
    eager.config._attn_implementation = "eager"
    hooked = build_tiny_model(TOKENIZER, seed=0)
    hooked.model.layers[1].register_forward_hook(lambda *args: None)
    lora = get_peft_model(build_tiny_model(TOKENIZER, seed=0), LoraConfig(r=2, target_modules=["q_proj"]))
    laid_out_otherwise = build_tiny_model(TOKENIZER, seed=0)  # as a future transformers might
    laid_out_otherwise.model.layers[2].mlp.fused_proj = laid_out_otherwise.model.layers[2].mlp.up_proj
    del laid_out_otherwise.model.layers[2].mlp.up_proj
    reasons = {
        "eager": unsupported_reason(eager),
        "hooked": unsupported_reason(hooked),
        "lora": unsupported_reason(lora),
        "lora base": unsupported_reason(lora.get_base_model()),
        "sliding": unsupported_reason(sliding_qwen2()),
        "laid out otherwise": unsupported_reason(laid_out_otherwise),
    }
    assert "eager" in reasons["eager"]
    assert "model.layers.1 has forward hooks" in reasons["hooked"]
    assert "PeftModel" in reasons["lora"]
    assert "not a plain nn.Linear" in reasons["lora base"]
    assert "sliding" in reasons["sliding"]
    assert "no model.layers.2.mlp.up_proj.weight" in reasons["laid out otherwise"]
    # and the policy still samples with them, through the transformers forward, and says why once
    with caplog.at_level(logging.INFO, logger="policies.hf"):
        policy = HFPolicy(lora, TOKENIZER, max_new_tokens=5)
        actions = policy.generate([[5, 6, 7]] * 2) + policy.generate([[8, 9]])
    assert len(actions) == 3 and all(1 <= len(action.token_ids) <= 5 for action in actions)
    assert caplog.text.count("decoding with the transformers forward: PeftModel is not one of") == 1
