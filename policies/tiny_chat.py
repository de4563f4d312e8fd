"""A tiny chat model to serve as a helper in tests and throughput measurements.

:func:`save_tiny_chat_model` writes a randomly initialised Llama of a few thousand parameters
with a word-level tokenizer and a chat template, built locally (nothing is downloaded). Its
replies are random words, never stray bytes, so they pass the reply checks: it is for tests and
throughput measurements, not for answers.
"""

from __future__ import annotations

from pathlib import Path

_WORDS = (
    "the a step claim answer check fact theorem sum product prime factor divisor number equation "
    "correct incorrect first next strategy try compute add subtract multiply divide count square "
    "root even odd term value left right side holds because so then we is are of to and or not "
    "it this that one two three four five six seven eight nine ten zero"
).split()
_SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")
_CHAT_TEMPLATE = (
    "{% for message in messages %}<s> {{ message['role'] }} : {{ message['content'] }} </s>{% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


def save_tiny_chat_model(path: str | Path, *, seed: int = 0, hidden_size: int = 32) -> Path:
    """Write a tiny chat model (weights, word-level tokenizer, chat template) to ``path``.

    Its generation config suppresses the special tokens, so every reply runs to ``max_tokens``
    words. Imports ``torch`` and ``transformers`` (only when called).

    Returns:
        ``path``, loadable with ``from_pretrained`` and servable with ``transformers serve``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    vocabulary = {token: index for index, token in enumerate((*_SPECIAL, *_WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.chat_template = _CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocabulary),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=0, bos_token_id=1, eos_token_id=2, suppress_tokens=list(range(len(_SPECIAL)))
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
