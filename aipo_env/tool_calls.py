"""Consults as chat-model tool calls: the three agents offered as tools, tool calls parsed from a turn.

:class:`ToolCallProtocol` is a drop-in for :class:`~aipo_env.protocol.Protocol`
(``gym.make(ID, protocol=ToolCallProtocol(...))``): the same :class:`ParsedAction` results, the same
rewards and budgets, but a consult is a *tool call* and the reply a *tool message*. Two JSON
tool-call formats are read, whichever the model writes:

* Qwen / Hermes: ``<tool_call>{"name": "verify", "arguments": {"query": "..."}}</tool_call>``
  (whitespace inside the tags allowed; ``arguments`` may also be a JSON string of an object);
* Llama 3.x: the turn ends with ``{"name": "verify", "parameters": {"query": "..."}}``, optionally
  after ``<|python_tag|>`` (``"arguments"`` is accepted in place of ``"parameters"``).

As with the text protocol, the call must *end* the turn (trailing whitespace and the protocol's
``end_of_turn`` marker allowed); a turn with a call followed by more text is a final response.
Outcomes, mirroring :mod:`aipo_env.protocol`:

=================  ==========================================================================
kind               when
=================  ==========================================================================
``consult``        one well-formed call of a known agent with a non-empty string ``query``
``final``          no call ends the turn. Issues: ``empty``, ``oversize``, ``unclosed_consult``
                   (``<tool_call>`` never closed, or a trailing ``{"name": ...`` that is cut off:
                   the text is scored as it is)
``invalid``        a call ends the turn but cannot be honoured: ``malformed_tool_call`` (not
                   JSON, no string ``name``, arguments not an object), ``several_tool_calls``
                   (one consult per turn), ``unknown_agent``, ``empty_query``. The env answers
                   with a note (as a tool message) and applies ``invalid_action_penalty``
=================  ==========================================================================

The reply is written into the transcript by ``render(agent, reply)``: for a chat model that is
its chat template's rendering of the tool message, from just after the token that ends the
assistant's turn to the opening of the next assistant turn (:func:`policies.tool_calls.tool_protocol`
builds it from a tokenizer). Without one, a plain Hermes-style block is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from aipo_env.protocol import AGENT_NAMES, ActionKind, ParsedAction, screened

ToolStyle = Literal["qwen", "llama"]
PYTHON_TAG = "<|python_tag|>"
_SENTINEL = "AIPOREPLYSENTINEL"
_LLAMA_START = re.compile(r'\{\s*"name"\s*:')
_QWEN_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_MAX_LLAMA_TRIES = 8  # a turn's last few '{"name":' openings are tried, so parsing stays linear

AGENT_DESCRIPTIONS: dict[str, str] = {
    "verify": "Check a claim, a step or a candidate answer; says whether it is right.",
    "knowledge": "Look up a fact, a definition or a theorem.",
    "reasoning": "Get the next step of the solution, or a strategy.",
}


def tool_specs(agents: Sequence[str] = AGENT_NAMES) -> list[dict[str, Any]]:
    """The agents as JSON-schema function specs, as ``apply_chat_template(..., tools=...)`` takes them.

    Each tool takes one required string argument, ``query``.
    """
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": AGENT_DESCRIPTIONS.get(name, f"Consult the {name} agent."),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "Your question for the agent."}
                    },
                    "required": ["query"],
                },
            },
        }
        for name in agents
    ]


@dataclass(frozen=True)
class ToolCall:
    """One tool call found at the end of a turn.

    Attributes:
        name: the called tool (``None`` when the call is malformed).
        arguments: its arguments (``None`` when malformed).
        problem: why it is malformed (``None`` for a well-formed call).
    """

    name: str | None
    arguments: dict[str, Any] | None
    problem: str | None = None


@dataclass(frozen=True)
class TrailingCalls:
    """The tool calls that end a turn: ``calls`` start at ``start``; ``unclosed`` when one is cut off."""

    calls: tuple[ToolCall, ...] = ()
    start: int = -1
    unclosed: bool = False


def trailing_tool_calls(text: str) -> TrailingCalls:
    """Find the tool calls (Qwen or Llama format) that end ``text``; never raises."""
    body = text.rstrip()
    if body.endswith("</tool_call>"):
        blocks = list(_QWEN_BLOCK.finditer(body))
        if blocks and blocks[-1].end() == len(body):
            run = [blocks[-1]]
            for block in reversed(blocks[:-1]):  # the contiguous run of blocks at the end
                if body[block.end() : run[0].start()].strip():
                    break
                run.insert(0, block)
            return TrailingCalls(tuple(_call(_loads(b.group(1))) for b in run), run[0].start())
    if body.rfind("<tool_call>") > body.rfind("</tool_call>"):
        return TrailingCalls(unclosed=True)
    return _llama_call(body)


def _llama_call(body: str) -> TrailingCalls:
    """A Llama 3.x JSON call ending ``body`` (``{"name": ..., "parameters": ...}``)."""
    openings = [match.start() for match in _LLAMA_START.finditer(body)][-_MAX_LLAMA_TRIES:]
    if not openings:
        return TrailingCalls()
    decoder = json.JSONDecoder()
    for start in openings:
        try:
            value, end = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            continue
        if end == len(body):
            tagged = body.rfind(PYTHON_TAG, 0, start)
            if tagged >= 0 and not body[tagged + len(PYTHON_TAG) : start].strip():
                start = tagged
            return TrailingCalls((_call(value),), start)
    try:
        decoder.raw_decode(body, openings[-1])
    except json.JSONDecodeError:
        if body.endswith("}"):  # a whole object that is not JSON: a call, malformed
            return TrailingCalls((ToolCall(None, None, "not JSON"),), openings[-1])
        return TrailingCalls(unclosed=True)  # cut off mid-call
    return TrailingCalls()  # an object followed by more text: ordinary text


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return _NOT_JSON


_NOT_JSON = object()


def _call(value: Any) -> ToolCall:
    """A :class:`ToolCall` from a decoded JSON value (``{"name", "arguments" | "parameters"}``)."""
    if value is _NOT_JSON:
        return ToolCall(None, None, "not JSON")
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return ToolCall(None, None, "no string name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        arguments = _loads(arguments)
    if not isinstance(arguments, dict):
        return ToolCall(value["name"], None, "arguments are not an object")
    return ToolCall(value["name"], arguments)


def plain_tool_message(agent: str, reply: str) -> str:
    """A tool message without a chat template: a Hermes-style ``<tool_response>`` block."""
    return f"\n<tool_response>\n{reply}\n</tool_response>\n"


@dataclass(frozen=True)
class ToolCallProtocol:
    """The action protocol of consults as tool calls (module docstring).

    Args:
        agents: the agent names, offered as tools (:func:`tool_specs`).
        max_action_chars: longer actions are cut to this many characters and scored as final.
        style: the format :meth:`consult` writes (``"qwen"`` or ``"llama"``); both are read.
        end_of_turn: the text of the token that ends an assistant turn (``"<|im_end|>"``).
            :meth:`consult` appends it, so a written consult ends its turn as a sampled one
            does; :meth:`parse` ignores it at the end of a turn.
        render: ``(agent, reply) -> text`` of a tool message in the transcript (default
            :func:`plain_tool_message`). System notes are rendered the same way, with agent
            ``"system"``.
    """

    agents: tuple[str, ...] = AGENT_NAMES
    max_action_chars: int = 8192
    style: ToolStyle = "qwen"
    end_of_turn: str = ""
    render: Callable[[str, str], str] = field(default=plain_tool_message, compare=False)

    def __post_init__(self) -> None:
        if self.max_action_chars < 1:
            raise ValueError(f"max_action_chars must be at least 1, got {self.max_action_chars}")
        if self.style not in ("qwen", "llama"):
            raise ValueError(f"style must be 'qwen' or 'llama', got {self.style!r}")

    def tools(self) -> list[dict[str, Any]]:
        """The agents as tool specs (:func:`tool_specs`)."""
        return tool_specs(self.agents)

    def consult(self, agent: str, query: str) -> str:
        """Format a consult as a tool call in :attr:`style`, ending the turn, as a model writes it."""
        if self.style == "llama":
            call = json.dumps({"name": agent, "parameters": {"query": query}}, ensure_ascii=False)
        else:
            arguments = json.dumps({"query": query}, ensure_ascii=False)
            call = f'<tool_call>\n{{"name": "{agent}", "arguments": {arguments}}}\n</tool_call>'
        return call + self.end_of_turn

    def instructions(self, names: Sequence[str]) -> str:
        """The sentence that tells the policy how to consult (the tools themselves are in the prompt)."""
        return (
            f"To consult a helper, call one of the tools {', '.join(names) or 'verify'} with your question."
        )

    def feedback(self, agent: str, reply: str) -> str:
        """The transcript text of a reply: ``render(agent, reply)``."""
        return self.render(agent, reply)

    def feedback_wrapper(self, agent: str) -> tuple[str, str]:
        """The text :meth:`feedback` puts before and after a reply (found by rendering a sentinel)."""
        return _wrapper(self.render, agent)

    def parse(self, action: str) -> ParsedAction:
        """Parse one action text; never raises for any ``str``."""
        text, unusable = screened(action, self.max_action_chars)
        if unusable is not None:
            return unusable
        found = trailing_tool_calls(self._body(text))
        if not found.calls:
            return ParsedAction(ActionKind.FINAL, text, issue="unclosed_consult" if found.unclosed else None)
        if self.end_of_turn and not text.rstrip().endswith(self.end_of_turn):
            # a call in a turn that max_new_tokens cut (the model never ended it) is not made
            return ParsedAction(ActionKind.FINAL, text, issue="unclosed_consult")
        call = found.calls[0]
        agent = call.name.strip().lower() if call.name is not None else None
        query = (call.arguments or {}).get("query")
        query = query if isinstance(query, str) else ""

        def invalid(issue: str) -> ParsedAction:
            return ParsedAction(ActionKind.INVALID, text, agent=agent, query=query, issue=issue)

        if len(found.calls) > 1:
            return invalid("several_tool_calls")
        if call.problem is not None:
            return invalid("malformed_tool_call")
        if agent not in self.agents:
            return invalid("unknown_agent")
        if not query.strip():
            return invalid("empty_query")
        return ParsedAction(ActionKind.CONSULT, text, agent=agent, query=query.strip())

    def strip_consult(self, text: str) -> str:
        """Return ``text`` without the tool calls at its end (the rest is what gets scored)."""
        found = trailing_tool_calls(self._body(text))
        return text if not found.calls else text[: found.start]

    def _body(self, text: str) -> str:
        body = text.rstrip()
        if self.end_of_turn and body.endswith(self.end_of_turn):
            body = body[: -len(self.end_of_turn)]
        return body


@lru_cache(maxsize=64)
def _wrapper(render: Callable[[str, str], str], agent: str) -> tuple[str, str]:
    text = render(agent, _SENTINEL)
    at = text.find(_SENTINEL)
    return (text, "") if at < 0 else (text[:at], text[at + len(_SENTINEL) :])
