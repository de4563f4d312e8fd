r"""``log pi_agent`` on the policy's tokens: a helper's token log-probs moved across tokenizers.

A helper reports ``log pi_agent`` for its own tokens ``h_1..h_m``, whose text pieces concatenate
to its reply (:class:`~aipo_env.episode.TokenLogprobs`). The policy tokenizes the same characters
(with the env's ``<feedback>`` wrapper around them) into other tokens ``p_1..p_n``. Both are
tilings of one string, so they are matched by character position. Policy token ``p_k`` covers
characters ``[a_k, b_k)``; helper token ``h_j`` ends at character ``e_j``. Then

    log pi_agent(p_k) = sum_{j : a_k <= e_j - 1 < b_k} log pi_agent(h_j)

i.e. each helper token is given to the policy token that holds its last character: helper tokens
inside ``p_k`` are summed, and one that straddles a boundary goes to the policy token where it
ends. Why this is the right quantity: the log-probs of consecutive helper tokens add up to the
helper's log-prob of their joint text, so for any run of policy tokens that starts and ends on a
helper token boundary, the sum over the run is exactly the helper's log-prob of that text. When
the two tokenizers are the same, every ``p_k`` gets exactly its own log-prob. Where boundaries
differ, a straddling token's log-prob lands on its last policy token and the earlier ones get 0
(``pi_agent = 1``); that is the closest per-token reading that keeps every sum exact.

Wrapper characters (outside the reply's span) have no helper log-prob: their tokens get 0. A
helper token with an empty piece (bytes of a character completed by the next token) passes its
log-prob on to the next token.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from aipo_env.episode import TokenLogprobs


def spread_logprobs(policy_pieces: Sequence[str], text: str, helper: TokenLogprobs) -> list[float] | None:
    """``log pi_agent`` of each policy token of a segment (formula in the module docstring).

    Args:
        policy_pieces: each policy token's piece of ``text``; they must concatenate to ``text``.
        text: the segment's text (reply plus wrapper).
        helper: the helper's tokens and log-probs of characters ``[start, end)`` of ``text``.

    Returns:
        One value per policy token (0 where the helper says nothing), or ``None`` when the pieces
        do not tile the text: then the helper's log-probs cannot be placed and must be ignored.
    """
    tokens, logprobs = helper.tokens, helper.logprobs
    if tokens is None or len(tokens) != len(logprobs) or "".join(policy_pieces) != text:
        return None
    if not 0 <= helper.start <= helper.end <= len(text) or "".join(tokens) != text[helper.start : helper.end]:
        return None
    ends = list(accumulate(len(piece) for piece in policy_pieces))
    spread = [0.0] * len(policy_pieces)
    position, owner, carried = helper.start, 0, 0.0
    for piece, logprob in zip(tokens, logprobs, strict=True):
        carried += logprob
        if not piece:
            continue
        position += len(piece)
        while ends[owner] <= position - 1:
            owner += 1
        spread[owner] += carried
        carried = 0.0
    if carried and position > helper.start:  # trailing empty pieces: give them to the last character
        spread[owner] += carried
    return spread
