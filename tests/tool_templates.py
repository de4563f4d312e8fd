"""Tiny tokenizers whose chat templates render tools: Qwen2.5's and Llama 3.1's tool formats, written
here (shortened system texts, the same tool-call, tool-message and end-of-turn rendering)."""

from __future__ import annotations

from typing import Any

from policies.tiny import build_tiny_model, build_tokenizer

QWEN_TOOLS = r"""{%- if tools %}
{{- '<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- else %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif %}
{%- for message in messages %}
{%- if message.role == "user" or (message.role == "assistant" and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}{%- if message.content %}{{- '\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\n<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}
{%- endfor %}{{- '<|im_end|>\n' }}
{%- elif message.role == "tool" %}
{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != "tool" %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' }}{{- message.content }}{{- '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != "tool" %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"""

LLAMA_TOOLS = r"""{{- bos_token }}
{%- if tools is not none %}
{{- '<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython<|eot_id|>' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' and loop.first and tools is not none %}
{{- '<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, respond with a JSON for a function call with its proper arguments.\n\nRespond in the format {"name": function name, "parameters": dictionary of argument name and its value}.\n\n' }}
{%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\n\n' }}{%- endfor %}
{{- message.content + '<|eot_id|>' }}
{%- elif message.role == 'assistant' and message.tool_calls %}
{%- set tool_call = message.tool_calls[0].function %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{{- '{"name": "' + tool_call.name + '", ' }}{{- '"parameters": ' }}{{- tool_call.arguments | tojson }}{{- '}' }}{{- '<|eot_id|>' }}
{%- elif message.role == 'tool' or message.role == 'ipython' %}
{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' }}
{%- if message.content is mapping or message.content is iterable %}{{- message.content | tojson }}{%- else %}{{- message.content }}{%- endif %}
{{- '<|eot_id|>' }}
{%- else %}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"""

_STYLES: dict[str, tuple[str, list[str], str]] = {
    "qwen": (QWEN_TOOLS, ["<|im_start|>", "<|im_end|>"], "<|im_end|>"),
    "llama": (
        LLAMA_TOOLS,
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>"],
        "<|eot_id|>",
    ),
}


def tool_tokenizer(style: str = "qwen") -> Any:
    """The tiny byte tokenizer with ``style``'s special tokens, EOS and tools chat template."""
    template, specials, eos = _STYLES[style]
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.eos_token = eos
    tokenizer.chat_template = template
    return tokenizer


def tool_model(style: str = "qwen", seed: int = 0) -> tuple[Any, Any]:
    """A tiny model and its :func:`tool_tokenizer` (EOS = the template's end-of-turn token)."""
    tokenizer = tool_tokenizer(style)
    model = build_tiny_model(tokenizer, seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer
