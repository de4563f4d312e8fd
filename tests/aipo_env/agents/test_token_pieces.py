"""Token pieces: each token's share of the text, from ids (local tokenizers) or from bytes (servers)."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from aipo_env.agents.openai_backend import OpenAIAgent
from aipo_env.agents.token_pieces import decode_pieces, utf8_pieces
from policies.tiny import build_tokenizer


def test_byte_tokens_give_a_split_character_to_the_token_that_completes_it():
    tokenizer = build_tokenizer()
    text = "ok é→ 日"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = decode_pieces(tokenizer.decode, ids)
    assert pieces is not None and len(pieces) == len(ids) == len(text.encode())
    assert "".join(pieces) == text
    assert pieces[:4] == ["o", "k", " ", ""] and pieces[4] == "é"


def test_a_decoder_that_drops_the_leading_space_splits_like_the_whole_text():
    # SentencePiece-style: "▁world" reads " world" except at the start of a decode
    vocabulary = {"<unk>": 0, "▁Hello": 1, "▁world": 2, "!": 3}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    assert tokenizer.decode([2]) == "world"
    assert decode_pieces(tokenizer.decode, [1, 2, 3]) == ["Hello", " world", "!"]


def test_a_decoder_that_rewrites_earlier_text_is_refused():
    def decode(ids: list[int]) -> str:  # turns "a b" into "a-b" once the third token is there
        text = " ".join("abc"[i] for i in ids)
        return text.replace("a b c", "a-b c")

    assert decode_pieces(decode, [0, 1, 2]) is None


def test_server_bytes_decode_token_by_token():
    word = "日本".encode()
    assert utf8_pieces([b"A", word[:2], word[2:4], word[4:]]) == ["A", "", "日", "本"]
    assert utf8_pieces([b"\xff"]) is None and utf8_pieces([word[:2]]) is None


def test_openai_answers_give_pieces_from_bytes_or_token_strings(fake_server, openai_config, make_request):
    text = "Sí."
    raw = text.encode()
    entries = [
        {"token": "S", "logprob": -0.1, "bytes": list(raw[:2]), "top_logprobs": []},
        {"token": "bytes:\\xad", "logprob": -0.2, "bytes": list(raw[2:3]), "top_logprobs": []},
        {"token": ".", "logprob": -0.3, "bytes": list(raw[3:]), "top_logprobs": []},
    ]

    def body(entries):
        choice = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": entries},
        }
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "tiny", "choices": [choice]}

    server = fake_server(lambda request: (200, body(entries), 0.0))
    reply = OpenAIAgent("verify", openai_config(server.base_url, logprobs=True)).reply(make_request())
    assert reply.token_texts == ("S", "í", ".") and reply.token_logprobs == (-0.1, -0.2, -0.3)

    without_bytes = [{**entry, "bytes": None} for entry in entries]
    server = fake_server(lambda request: (200, body(without_bytes), 0.0))
    reply = OpenAIAgent("verify", openai_config(server.base_url, logprobs=True)).reply(make_request())
    assert reply.token_texts == ("S", "bytes:\\xad", ".")  # the learner will see they do not match
