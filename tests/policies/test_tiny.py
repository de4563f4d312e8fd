from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from policies import HFPolicy, build_tiny_model, build_tokenizer, save_tiny

TEXTS = [
    'Start with 7. Add 5.\n<consult agent="verify">Is 7 + 5 = 12?</consult>',
    "  \\boxed{-42}\n\n\t",
    "unicode: é, 中, 😀",
    "text that looks special: <eos><pad><bos>",
]


def test_tokenizer_round_trips_any_text_and_prepends_bos() -> None:
    tokenizer = build_tokenizer()
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert tokenizer("ab")["input_ids"][0] == tokenizer.bos_token_id


def test_tiny_model_is_small_and_reads_the_tokenizer() -> None:
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    assert 100_000 < model.num_parameters() < 1_000_000
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    tokenizer = build_tokenizer()
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    first = build_tiny_model(tokenizer, seed=3)
    assert torch.equal(torch.rand(1), expected)
    second = build_tiny_model(tokenizer, seed=3, architecture="qwen2")
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_save_pretrained_round_trip(tmp_path) -> None:
    path = save_tiny(tmp_path / "tiny", seed=1, architecture="llama")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    expected_tokenizer = build_tokenizer()
    expected = build_tiny_model(expected_tokenizer, seed=1, architecture="llama")
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == expected_tokenizer(text)["input_ids"]
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, expected(ids).logits)
    policy = HFPolicy.from_pretrained(path, device="cpu")
    assert policy.encode_prompt(TEXTS[1]) == expected_tokenizer(TEXTS[1])["input_ids"]
