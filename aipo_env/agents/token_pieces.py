"""Token pieces: which characters of a generated text each token wrote.

A backend that reports per-token log-probs also reports each token's piece of the text, so that
a learner with another tokenizer can move the log-probs onto its own tokens by character position
(:mod:`algorithms.helper_logprobs`). The pieces of a text concatenate to it exactly. A character
whose UTF-8 bytes are spread over several tokens (byte-level vocabularies split non-ASCII
characters) belongs to the token that completes it; the tokens before it get the empty piece.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence

_INCOMPLETE = "\ufffd"  # what decoders write for the bytes of a character not yet complete


def decode_pieces(decode: Callable[[list[int]], str], ids: Sequence[int]) -> list[str] | None:
    """Each token's piece of ``decode(ids)``, or ``None`` when the decoder is not incremental.

    Token ``k`` gets ``decode(ids[w:k + 1])`` minus ``decode(ids[w:d])``, where ``d`` tokens have
    written their text so far and ``w`` is where the previous piece started: decoding from an
    earlier token boundary keeps context-dependent decoders (SentencePiece drops the space of
    a leading token) consistent. A token whose text ends in an incomplete character
    (``U+FFFD``) writes ``""`` and leaves it to the next. Costs two decodes of a few tokens per
    token.

    Args:
        decode: ids -> text, with the same settings that produced the text being split.
        ids: the generated token ids.

    Returns:
        One piece per id, or ``None`` if the pieces do not concatenate to ``decode(ids)`` (a
        decoder that rewrites earlier text, e.g. one that cleans up spaces before punctuation).
    """
    ids = list(ids)
    pieces: list[str] = []
    window, written = 0, 0
    for k in range(len(ids)):
        before = decode(ids[window:written])
        after = decode(ids[window : k + 1])
        if after.endswith(_INCOMPLETE) or not after.startswith(before):
            pieces.append("")
            continue
        pieces.append(after[len(before) :])
        window, written = written, k + 1
    return pieces if "".join(pieces) == decode(ids) else None


def utf8_pieces(chunks: Sequence[bytes]) -> list[str] | None:
    """Each token's piece of the text whose UTF-8 bytes are ``b"".join(chunks)``.

    OpenAI-compatible servers report each token's bytes; decoding them one token at a time
    assigns every character to the token holding its last byte.

    Returns:
        One piece per chunk, or ``None`` if the bytes are not valid UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        pieces = [decoder.decode(bytes(chunk)) for chunk in chunks]
        rest = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return pieces if not rest else None
