"""Consults as tool calls through a tokenizer's chat template: the tools in the prompt, replies as tool messages.

:func:`tool_protocol` turns a chat tokenizer into the env's
:class:`~aipo_env.tool_calls.ToolCallProtocol`, whose ``render`` writes a reply exactly as the
template renders a ``{"role": "tool"}`` message after an assistant tool call. The rendered text is
the *suffix* TRL's ``GRPOTrainer`` appends after a tool call (``_get_tool_suffix_ids``):

    full   = template([user, assistant with a tool call, tool reply], generation prompt)
    suffix = full[just after the end-of-turn token that closes the assistant's tool call :]

so the suffix runs from just after the token that ends the assistant's turn (``<|im_end|>``,
``<|eot_id|>``, which the policy sampled as its EOS) to the opening of the next assistant turn.
Where that cut is is found by rendering a sentinel reply. Unlike TRL's prefix comparison, the
assistant turn itself may render differently once a message follows it (Qwen3 drops an empty
``<think>`` block from a turn that is no longer the last): the policy's own sampled turn stands
there, and only the text after it comes from the template.
The episode's ids are then, with nothing re-tokenised:

    template(user turn, tools=specs, generation prompt)   (HFPolicy.encode_prompt)
    + ids the policy sampled, ending in its end-of-turn token
    + tokens(suffix)    (special-token text parsed, as apply_chat_template(tokenize=True) does)
    + ids the policy sampled ...

Special tokens split the text before BPE runs, so with byte-level BPE tokenizers (Qwen, Llama 3)
``tokens(before) + tokens(suffix)`` equals ``tokens(before + suffix)``: the ids are the template's
rendering of the conversation with the policy's turns as sampled. As in the template, a reply that
contains special-token text (``<|im_end|>``) is tokenised to those tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aipo_env.protocol import AGENT_NAMES
from aipo_env.tool_calls import ToolCallProtocol, ToolStyle, tool_specs

_PROBE_QUERY = "AIPOQUERYSENTINEL"
_PROBE_REPLY = "AIPOREPLYSENTINEL"


class TemplateRenderer:
    """``(agent, reply) -> text`` of a tool message in a tokenizer's chat template (module docstring).

    Args:
        tokenizer: a tokenizer whose chat template renders tools and tool messages.
        agents: the tools offered.
        end_of_turn: candidate texts of the token that ends an assistant turn; the one found last
            in the rendered assistant turn is where a tool message starts.

    Raises:
        ValueError: no end-of-turn text appears in the template's rendering of a tool call.
    """

    def __init__(self, tokenizer: Any, agents: Sequence[str], end_of_turn: Sequence[str]) -> None:
        self.tokenizer, self.specs = tokenizer, tool_specs(agents)
        prefix = self._render(_opening(agents[0]), generation=False)
        ends = [(prefix.rfind(marker), marker) for marker in end_of_turn if marker and marker in prefix]
        if not ends:
            raise ValueError(
                "cannot find where the chat template ends an assistant turn: none of the end-of-turn "
                f"tokens {list(end_of_turn)} appears in its rendering of a tool call"
            )
        self.end_of_turn = max(ends)[1]

    def __call__(self, agent: str, reply: str) -> str:
        probe, full = self._conversation(agent, _PROBE_REPLY), self._conversation(agent, reply)
        end = probe.rfind(self.end_of_turn, 0, max(probe.find(_PROBE_REPLY), 0))
        if end < 0:
            raise ValueError(
                "the chat template does not render a tool message's content after the end of the "
                f"assistant's turn ({self.end_of_turn!r})"
            )
        start = end + len(self.end_of_turn)
        if full[:start] != probe[:start]:
            raise ValueError(
                "the chat template renders the turns before a tool message differently for different "
                "replies; its tool messages cannot be spliced after a sampled turn"
            )
        return full[start:]

    def _conversation(self, agent: str, reply: str) -> str:
        """A tool call of ``agent``, its ``reply`` and the next assistant turn's opening, rendered."""
        tool = {"role": "tool", "name": agent, "content": reply}
        return self._render([*_opening(agent), tool], generation=True)

    def _render(self, messages: list[dict[str, Any]], *, generation: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=self.specs, tokenize=False, add_generation_prompt=generation
        )


def _opening(agent: str) -> list[dict[str, Any]]:
    """A user turn and an assistant turn that calls ``agent``: what a tool message follows."""
    call = {"type": "function", "function": {"name": agent, "arguments": {"query": _PROBE_QUERY}}}
    return [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": [call]}]


def template_renderer(tokenizer: Any, agents: Sequence[str], end_of_turn: Sequence[str]) -> TemplateRenderer:
    """A :class:`TemplateRenderer`, once the template is checked to render tool specs in the prompt
    and a tool call followed by a tool message.

    Raises:
        ValueError: it does not; the message says why and what to use instead.
    """
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"protocol='tools' needs a chat template, and the tokenizer {name!r} has none")
    user = [{"role": "user", "content": "Q"}]
    try:
        plain = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        offered = tokenizer.apply_chat_template(
            user, tools=tool_specs(agents), tokenize=False, add_generation_prompt=True
        )
        if plain == offered or agents[0] not in offered:
            raise ValueError(
                f"the chat template of {name!r} does not render tools (apply_chat_template ignores "
                "tools=); use protocol='text' (consults as <consult> tags) or a model whose template "
                "supports tools (Qwen2.5, Llama 3.1, ...)"
            )
        renderer = TemplateRenderer(tokenizer, agents, end_of_turn)
        reply = renderer(agents[0], _PROBE_REPLY)
    except ValueError:
        raise
    except Exception as error:  # a template that raises on tool messages (jinja2 errors and others)
        raise ValueError(
            f"the chat template of {name!r} cannot render a tool-calling conversation ({error}); "
            "use protocol='text' or a model whose template supports tools (Qwen2.5, Llama 3.1, ...)"
        ) from error
    if _PROBE_REPLY not in reply:
        raise ValueError(f"the chat template of {name!r} does not render the content of tool messages")
    return renderer


def template_style(tokenizer: Any) -> ToolStyle:
    """The tool-call format a template expects: ``"qwen"`` if it writes ``<tool_call>``, else ``"llama"``."""
    return "qwen" if "<tool_call>" in str(tokenizer.chat_template) else "llama"


def tool_protocol(
    tokenizer: Any,
    *,
    agents: Sequence[str] = AGENT_NAMES,
    end_of_turn: Sequence[str] | None = None,
    style: ToolStyle | None = None,
    max_action_chars: int = 8192,
) -> ToolCallProtocol:
    """The env's :class:`~aipo_env.tool_calls.ToolCallProtocol` for a chat tokenizer.

    Args:
        tokenizer: a tokenizer whose chat template supports tools (checked: :func:`template_renderer`).
        agents: the agents offered as tools.
        end_of_turn: texts of the tokens that can end an assistant turn (default: the EOS token).
        style: the format scripted consults are written in (default: :func:`template_style`).
        max_action_chars: the env's action size limit.

    Raises:
        ValueError: the template has no tools support; the message says what to use instead.
    """
    agents = tuple(agents)
    renderer = template_renderer(tokenizer, agents, list(end_of_turn or [str(tokenizer.eos_token)]))
    return ToolCallProtocol(
        agents=agents,
        max_action_chars=max_action_chars,
        style=style or template_style(tokenizer),
        end_of_turn=renderer.end_of_turn,
        render=renderer,
    )


def encode_tool_prompt(tokenizer: Any, text: str, protocol: ToolCallProtocol) -> list[int]:
    """Token ids of an episode's opening: ``text`` as the user turn, the agents as tools, the generation prompt."""
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tools=protocol.tools(), add_generation_prompt=True, tokenize=True
    )
    return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)


def encode_template_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of template text (tool messages): special-token text parsed, nothing added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
