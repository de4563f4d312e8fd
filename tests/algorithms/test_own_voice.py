"""The own-voice transcript: consult requests and feedback tags removed, the reply where the policy writes."""

from __future__ import annotations

import pytest
import torch

from aipo_env.episode import EpisodeRecord, Segment, TokenLogprobs
from aipo_env.protocol import Protocol
from algorithms.batch import AGENT, PAD, POLICY, PROMPT, collate
from algorithms.own_voice import voiced_batch, voiced_episode
from algorithms.rollout import tokenize_episode
from policies import Action, HFPolicy

PROTOCOL = Protocol()
CONSULT = PROTOCOL.consult("reasoning", "next step")
PROMPT_TEXT = "Start with 3. Double it, then add 1.\n"


@pytest.fixture(scope="module")
def tiny() -> HFPolicy:
    return HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=8)


class Merging:
    """A policy whose tokenizer merges a few character pairs (as BPE merges ``" <"``), one id per piece."""

    MERGES = (" <", "\n<")
    pad_token_id = 0

    def __init__(self) -> None:
        self.vocabulary = ["<pad>"]
        self.tokenizer = self

    def encode_text(self, text: str) -> list[int]:
        ids, position = [], 0
        while position < len(text):
            piece = next((m for m in self.MERGES if text.startswith(m, position)), text[position])
            if piece not in self.vocabulary:
                self.vocabulary.append(piece)
            ids.append(self.vocabulary.index(piece))
            position += len(piece)
        return ids

    encode_prompt = encode_text

    def decode(self, ids: list[int], **options: bool) -> str:
        return "".join(self.vocabulary[i] for i in ids)


def sampled(policy, text: str) -> Action:
    ids = policy.encode_text(text)
    return Action(text, tuple(ids), tuple(-0.5 for _ in ids))


def episode(policy, turns: list[str], replies: list[str], logprobs: TokenLogprobs | None = None):
    """A record prompt | turn | reply | turn ..., tokenized as the rollout does."""
    segments = [Segment("prompt", None, PROMPT_TEXT)]
    for index, turn in enumerate(turns):
        segments.append(Segment("policy", None, turn))
        if index < len(replies):
            segments.append(
                Segment("agent", "reasoning", PROTOCOL.feedback("reasoning", replies[index]), logprobs)
            )
    record = EpisodeRecord(segments=segments)
    actions = [sampled(policy, turn) for turn in turns]
    return tokenize_episode(policy, record, actions, group=0), record


def voice(policy, tokenized, record):
    return voiced_episode(
        tokenized.token_ids, tokenized.sources, tokenized.agent_logprobs, tokenized.segment_spans, record,
        policy, PROTOCOL,
    )  # fmt: skip


def text_of(policy, ids: list[int], sources: list[int], wanted: int | None = None) -> str:
    return policy.tokenizer.decode(
        [i for i, s in zip(ids, sources, strict=True) if wanted is None or s == wanted],
        skip_special_tokens=False,
    )


def test_the_reply_stands_where_the_policy_would_have_written_it(tiny: HFPolicy) -> None:
    turns = [f"Step 1: 3 + 3 = 6\n{CONSULT}", "Step 3: 7 + 0 = 7\n\\boxed{7}"]
    tokenized, record = episode(tiny, turns, ["Step 2: 6 + 1 = 7"])
    voiced = voice(tiny, tokenized, record)
    assert voiced is not None
    ids, sources = voiced.token_ids, voiced.sources
    assert text_of(tiny, ids, sources).endswith(
        PROMPT_TEXT + "Step 1: 3 + 3 = 6\nStep 2: 6 + 1 = 7\nStep 3: 7 + 0 = 7\n\\boxed{7}"
    )
    assert text_of(tiny, ids, sources, AGENT) == "Step 2: 6 + 1 = 7\n"
    assert text_of(tiny, ids, sources, POLICY) == "Step 3: 7 + 0 = 7\n\\boxed{7}"
    # own text before the first reply has its context of x: context here, learned in x
    assert "Step 1: 3 + 3 = 6\n" in text_of(tiny, ids, sources, PROMPT)
    # every kept token points at itself in x; the re-encoded reply points nowhere
    for token, source, origin in zip(ids, sources, voiced.origin, strict=True):
        assert (origin < 0) == (source == AGENT)
        if origin >= 0:
            assert tokenized.token_ids[origin] == token
            assert source != POLICY or tokenized.sources[origin] == POLICY


def test_an_episode_without_helper_content_has_none(tiny: HFPolicy) -> None:
    tokenized, record = episode(tiny, ["\\boxed{7}"], [])
    assert voice(tiny, tokenized, record) is None


def test_a_scripted_consult_leaves_the_reply_right_after_the_prompt(tiny: HFPolicy) -> None:
    _, record = episode(tiny, [CONSULT, "\\boxed{7}"], ["Step 1: 3 + 3 = 6"])
    tokenized = tokenize_episode(
        tiny, record, [Action(CONSULT), sampled(tiny, "\\boxed{7}")], group=0, scripted_turns=1
    )
    voiced = voice(tiny, tokenized, record)
    text = text_of(tiny, voiced.token_ids, voiced.sources)
    assert text.endswith(PROMPT_TEXT + "Step 1: 3 + 3 = 6\n\\boxed{7}") and "consult" not in text


def test_a_reference_solution_is_already_in_the_policys_voice(tiny: HFPolicy) -> None:
    record = EpisodeRecord(
        segments=[Segment("prompt", None, PROMPT_TEXT), Segment("policy", None, "\\boxed{7}")]
    )
    tokenized = tokenize_episode(tiny, record, [Action("\\boxed{7}")], group=0, reference=True)
    voiced = voice(tiny, tokenized, record)
    assert voiced.token_ids == tokenized.token_ids and voiced.sources == tokenized.sources


def test_the_helpers_log_probs_follow_the_reply_onto_its_new_tokens(tiny: HFPolicy) -> None:
    reply = "Step 2: 6 + 1 = 7"
    start = len(PROTOCOL.feedback_wrapper("reasoning")[0])
    pieces = ("Step", " 2:", " 6 + 1", " = 7")
    helper = TokenLogprobs(start, start + len(reply), pieces, (-1.0, -0.5, -2.0, -0.25))
    tokenized, record = episode(tiny, [CONSULT, "\\boxed{7}"], [reply], helper)
    voiced = voice(tiny, tokenized, record)
    content = [value for value, s in zip(voiced.agent_logprobs, voiced.sources, strict=True) if s == AGENT]
    # byte-level tokens: each helper token's log-prob on its last character, the trailing "\n" gets 0
    expected = [0.0] * (len(reply) + 1)
    end = 0
    for piece, value in zip(pieces, helper.logprobs, strict=True):
        end += len(piece)
        expected[end - 1] = value
    assert content == pytest.approx(expected)


def test_a_token_that_straddles_the_request_is_re_encoded_as_context() -> None:
    policy = Merging()
    turns = [f"Hi {CONSULT}", f"ok {CONSULT}", "Done."]
    tokenized, record = episode(policy, turns, ["A", "B"])
    voiced = voice(policy, tokenized, record)
    pieces = [policy.vocabulary[i] for i in voiced.token_ids]
    assert "".join(pieces) == PROMPT_TEXT + "Hi A\nok B\nDone."
    rows = list(zip(pieces, voiced.sources, voiced.origin, strict=True))
    at = len(PROMPT_TEXT)
    # "Hi" as sampled (context: before the first reply); " <" was sampled, so " " is re-encoded
    assert rows[at : at + 3] == [
        ("H", PROMPT, rows[at][2]),
        ("i", PROMPT, rows[at + 1][2]),
        (" ", PROMPT, -1),
    ]
    assert rows[at][2] >= 0 and rows[at + 1][2] >= 0
    assert [(p, s) for p, s, _ in rows[at + 3 : at + 5]] == [("A", AGENT), ("\n", AGENT)]
    # after the first reply the policy's own sampled tokens are continuation; the straddled " " is not
    assert [(p, s, o >= 0) for p, s, o in rows[at + 5 : at + 8]] == [
        ("o", POLICY, True),
        ("k", POLICY, True),
        (" ", PROMPT, False),
    ]
    assert [s for _, s, _ in rows[-5:]] == [POLICY] * 5


def test_the_batch_of_transcripts_aligns_with_the_episodes(tiny: HFPolicy) -> None:
    consulted, first = episode(tiny, [CONSULT, "\\boxed{7}"], ["Step 1: 3 + 3 = 6"])
    alone, second = episode(tiny, ["\\boxed{6}"], [])
    batch = collate([alone, consulted], pad_id=tiny.pad_token_id)
    voiced = voiced_batch(batch, tiny, PROTOCOL)
    assert voiced.present.tolist() == [False, True]
    assert (voiced.source[0] == PAD).all()
    old = torch.arange(batch.input_ids.numel(), dtype=torch.float32).view(batch.input_ids.shape)
    behaviour = voiced.behaviour(old)
    continuation = voiced.policy_mask[1]
    assert continuation.any()
    assert torch.equal(behaviour[1][continuation], old[1][voiced.origin[1][continuation]])
    assert voiced.select([1]).input_ids.shape[1] == int(voiced.attention_mask[1].sum())
    with pytest.raises(ValueError, match="segment_spans"):
        voiced_batch(type(batch)(**{**batch.__dict__, "segment_spans": []}), tiny, PROTOCOL)
