"""Helper token log-probs: from the agent's reply into the episode record, exactly where the reply sits."""

from __future__ import annotations

import json

from aipo_env.agents import Agent, AgentReply
from aipo_env.agents.model_agent import Completion, strip_pieces
from aipo_env.core import ReasoningEnv
from aipo_env.episode import EpisodeRecord, Segment, TokenLogprobs
from aipo_env.tasks.arithmetic import ArithmeticTask

CONSULT = '<consult agent="reasoning">next?</consult>'
PIECES = ("Add", " 3", " and", " 4", ".")
LOGPROBS = (-0.5, -1.0, -0.25, -2.0, -0.125)


class Scored(Agent):
    name = "reasoning"

    def __init__(self, reply: AgentReply) -> None:
        self.answer = reply

    def reply(self, request):
        return self.answer


def consulted_segment(reply: AgentReply, **env_options) -> Segment:
    env = ReasoningEnv(ArithmeticTask(level=1, size=5), agents={"reasoning": Scored(reply)}, **env_options)
    env.reset(seed=0)
    env.step(CONSULT)
    (segment,) = [segment for segment in env._record.segments if segment.source == "agent"]
    return segment


def test_the_segment_records_the_reply_span_its_tokens_and_log_probs():
    text = "".join(PIECES)
    segment = consulted_segment(AgentReply(text, token_logprobs=LOGPROBS, token_texts=PIECES))
    recorded = segment.logprobs
    assert recorded is not None and segment.text == f'\n<feedback agent="reasoning">{text}</feedback>\n'
    assert segment.text[recorded.start : recorded.end] == text
    assert recorded.tokens == PIECES and recorded.logprobs == LOGPROBS


def test_replies_without_log_probs_or_cut_by_the_env_record_none():
    assert consulted_segment(AgentReply("Add 3 and 4.")).logprobs is None
    long = AgentReply("word " * 50, token_logprobs=(-1.0,) * 50, token_texts=("word ",) * 50)
    segment = consulted_segment(long, max_feedback_chars=40)
    assert "[trimmed]" in segment.text and segment.logprobs is None
    garbage = AgentReply("Add 3.", token_logprobs=("not a number",))  # type: ignore[arg-type]
    assert consulted_segment(garbage).logprobs is None


def test_records_round_trip_through_json_and_old_records_still_load():
    segment = consulted_segment(AgentReply("".join(PIECES), token_logprobs=LOGPROBS, token_texts=PIECES))
    record = EpisodeRecord(segments=[Segment("prompt", None, "Q\n"), segment], reward=1.0)
    again = EpisodeRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and isinstance(again.segments[1].logprobs, TokenLogprobs)
    old = {"segments": [{"source": "agent", "agent": "verify", "text": "ok"}], "reward": 0.5}
    assert EpisodeRecord.from_dict(old).segments[0] == Segment("agent", "verify", "ok")


def test_stripping_a_reply_drops_whitespace_tokens_and_cuts_partial_ones():
    logprobs, pieces = strip_pieces(
        "\n\n Yes it is.\n", (-1.0, -2.0, -3.0, -4.0, -5.0), ("\n", "\n Yes", " it", " is.", "\n")
    )
    assert pieces == ("Yes", " it", " is.") and logprobs == (-2.0, -3.0, -4.0)
    assert "".join(pieces) == "\n\n Yes it is.\n".strip()
    # pieces that do not match the text are passed on as they are (the learner reports them)
    assert strip_pieces(" a", (-1.0,), ("b",)) == ((-1.0,), ("b",))


def test_cached_completions_keep_their_token_pieces():
    completion = Completion("Yes.", "stop", (-0.1, -0.2), ("Yes", "."))
    assert Completion.from_json(json.loads(json.dumps(completion.to_json()))) == completion
    older = {"text": "Yes.", "finish_reason": "stop", "token_logprobs": [-0.1, -0.2]}
    assert Completion.from_json(older).token_texts is None
