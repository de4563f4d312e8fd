"""A Hugging Face causal LM as a policy: batched sampling across episodes, with behaviour log-probs.

Generation of one turn stops when the turn ends a consult (``</consult>``, or any ``stop``
string) or at EOS, whichever comes first, or after ``max_new_tokens``. Multi-turn episodes are
played by generating again on the transcript with the helper's reply appended.

Two ways to drive it:

* :meth:`HFPolicy.act` (the :class:`~policies.base.Policy` interface) encodes each observation
  as a fresh prompt. With ``chat_template=True`` the whole observation becomes the user message.
* :meth:`HFPolicy.generate` continues token contexts that the caller builds with
  :meth:`encode_prompt` (the problem, chat-formatted if asked) and :meth:`encode_text` (helper
  replies, spliced raw into the assistant's turn). Learners use this path: the tokens the model
  saw and sampled are exactly the tokens it is trained on.

With ``protocol="tools"`` consults are chat-model tool calls (:mod:`policies.tool_calls`): the
prompt offers the agents as tools, a turn ends at EOS (the end of the assistant message), and
:meth:`encode_text` tokenises the env's text as template text (a tool message's special tokens
parsed). The env takes :attr:`HFPolicy.env_protocol`.

Sampling is one loop over a KV cache: contexts are left-padded (no mask at all when they have
equal lengths), identical contexts (a GRPO group) are prefilled once, and a row leaves the batch
the moment its turn ends, so later steps compute only the rows still going. The cache reserves
room for the new tokens (:mod:`policies.kv_cache`) instead of growing by concatenation. Stop
strings are checked by decoding only rows whose newest token could complete one. For Qwen2,
Qwen3 and Llama models each new token goes through :mod:`policies.decode_step` (the same logits
without the transformers forward's per-call set-up).

The behaviour log-prob of a sampled token is ``log softmax(warped logits / temperature)`` at that
token, taken from the very distribution it was sampled from (after ``top_k`` / ``top_p``). With the
defaults (``top_k=0``, ``top_p=1``) that is the full tempered softmax a learner recomputes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from aipo_env.extras import needs_extra

with needs_extra("train", "policies.HFPolicy"):
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        LogitsProcessor,
        PreTrainedModel,
        PreTrainedTokenizerBase,
        StoppingCriteria,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

from aipo_env.protocol import Protocol
from aipo_env.tool_calls import ToolCallProtocol
from policies import shipped
from policies.base import Action, Policy, closed_turn, turn_text
from policies.decode_step import decode_step, unsupported_reason
from policies.kv_cache import cache_argument, reserve
from policies.tool_calls import encode_template_text, encode_tool_prompt, tool_protocol

TINY = "tiny"
logger = logging.getLogger("policies.hf")


class HFPolicy(Policy):
    """Any ``transformers`` causal LM and its tokenizer, acting in aipo envs.

    Args:
        model: a causal LM (``AutoModelForCausalLM``-compatible).
        tokenizer: its tokenizer; a missing pad token is set to the EOS token.
        chat_template: format prompts with the tokenizer's chat template (instruct models);
            otherwise the prompt is raw text after the tokenizer's BOS, if it has one.
        max_new_tokens: the most tokens one turn may have.
        temperature: sampling temperature (> 0).
        top_k: keep the ``top_k`` most likely tokens (0 = all).
        top_p: nucleus sampling mass (1 = off).
        stop: strings that end a turn; the default ends a turn after a consult request
            (``</consult>``), or, with ``protocol="tools"``, only at EOS.
        protocol: ``"text"``: consults are ``<consult>`` tags; ``"tools"``: tool calls in the chat
            template's format (needs ``chat_template=True`` and a template that renders tools);
            give :attr:`env_protocol` to the env.
        batch_size: the most sequences generated at once; larger batches are split.
        fast_decode: decode Qwen2, Qwen3 and Llama models with :mod:`policies.decode_step`
            (the same logits, less per-token overhead); other models use their own forward.
    """

    trainable = True

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        chat_template: bool = False,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        protocol: Literal["text", "tools"] = "text",
        batch_size: int = 64,
        fast_decode: bool = True,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
        if not 0 < top_p <= 1 or top_k < 0 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("need 0 < top_p <= 1, top_k >= 0, max_new_tokens >= 1 and batch_size >= 1")
        if chat_template and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "chat_template=True but this tokenizer has no chat template; use chat_template=False "
                "(raw prompts) or a tokenizer of an instruct model"
            )
        if protocol not in ("text", "tools"):
            raise ValueError(f"protocol must be 'text' or 'tools', got {protocol!r}")
        if protocol == "tools" and not chat_template:
            raise ValueError(
                "protocol='tools' offers the agents through the chat template: set chat_template=True"
            )
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ValueError("the tokenizer has neither a pad token nor an EOS token; set one of them")
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        self.chat_template = chat_template
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.top_k, self.top_p = top_k, top_p
        if stop is None:
            stop = ("</consult>",) if protocol == "text" else ()
        self.stop, self.batch_size, self.fast_decode = tuple(stop), batch_size, fast_decode
        eos = model.generation_config.eos_token_id
        eos = tokenizer.eos_token_id if eos is None else eos
        self.eos_token_ids: tuple[int, ...] = tuple(eos) if isinstance(eos, list) else (eos,)
        self.protocol = protocol
        self.env_protocol: Protocol | ToolCallProtocol = Protocol()
        if protocol == "tools":
            ends = tokenizer.convert_ids_to_tokens(list(self.eos_token_ids))
            self.env_protocol = tool_protocol(tokenizer, end_of_turn=[str(tokenizer.eos_token), *ends])
        self._triggers: torch.Tensor | bool | None = None  # see _stop_triggers
        self._told_why_slow = False  # see _decode_step
        self._cache_argument = cache_argument(model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
        self._keeps_logits = (
            "logits_to_keep" in inspect.signature(base.forward).parameters
        )  # not in older versions

    @property
    def end_of_turn(self) -> str:
        """The text the env's tool-call protocol reads as the end of a turn (``""`` in text mode)."""
        return getattr(self.env_protocol, "end_of_turn", "")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        dtype: str | torch.dtype = "auto",
        device: str | torch.device | None = None,
        tiny_options: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> HFPolicy:
        """Load a model and tokenizer from a directory or hub id, or build the tiny model.

        Args:
            name_or_path: a ``save_pretrained`` directory, a hub id, ``"tiny"`` for a fresh
                model from :mod:`policies.tiny` (no download), or ``"warmup:NAME"`` for a
                model shipped with the package (:mod:`policies.shipped`).
            dtype: the weights' dtype (``"auto"``: as saved).
            device: where the model runs (default: CUDA when available, else CPU).
            tiny_options: keyword arguments of :func:`policies.tiny.build_tiny_model`.
            **settings: keyword arguments of :class:`HFPolicy`.
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        name_or_path = shipped.resolve(str(name_or_path))
        if str(name_or_path) == TINY:
            from policies.tiny import build_tiny_model, build_tokenizer

            tokenizer = build_tokenizer()
            model = build_tiny_model(tokenizer, **dict(tiny_options or {}))
        else:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
        return cls(model.to(device), tokenizer, **settings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def save_pretrained(self, path: str | Path) -> None:
        """Write the model and tokenizer, loadable with :meth:`from_pretrained`."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    # -- encoding ------------------------------------------------------------------------------

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids that open an episode: the chat-formatted user turn (with the agents as tools,
        for ``protocol="tools"``), or BOS + raw text."""
        if isinstance(self.env_protocol, ToolCallProtocol):
            return encode_tool_prompt(self.tokenizer, text, self.env_protocol)
        if self.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)
        return list(self.tokenizer(text, split_special_tokens=True)["input_ids"])

    def encode_text(self, text: str) -> list[int]:
        """Token ids of text spliced into the transcript (no special tokens added or parsed; with
        ``protocol="tools"`` special-token text is parsed, as in the template's tool messages)."""
        if self.protocol == "tools":
            return encode_template_text(self.tokenizer, text)
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    # -- acting --------------------------------------------------------------------------------

    def act(self, observations: Sequence[str]) -> list[Action]:
        return self.generate([self.encode_prompt(observation) for observation in observations])

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        """Sample one turn after each token context.

        Args:
            contexts: token ids of each episode so far.
            greedy: take the most likely token instead of sampling.

        Returns:
            One action per context: the decoded text (special tokens dropped), the generated
            ids up to and including the stop string or EOS, and their behaviour log-probs.

        Raises:
            ValueError: when a context leaves no room for a new token within the model's
                ``max_position_embeddings``.
        """
        actions: list[Action] = []
        for start in range(0, len(contexts), self.batch_size):
            actions.extend(self._generate_batch(contexts[start : start + self.batch_size], greedy))
        return actions

    def _generate_batch(self, contexts: Sequence[Sequence[int]], greedy: bool) -> list[Action]:
        if not contexts:
            return []
        longest = max(len(context) for context in contexts)
        room = getattr(self.model.config, "max_position_embeddings", None)
        max_new = self.max_new_tokens if room is None else min(self.max_new_tokens, room - longest)
        if max_new < 1:
            raise ValueError(
                f"a context of {longest} tokens leaves no room within the model's {room} positions; "
                "lower max_turns or max_new_tokens, or use a model with more positions"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                tokens, logprobs, lengths = self._sample(contexts, max_new, greedy)
        finally:
            self.model.train(was_training)
        kept = [row[:length] for row, length in zip(tokens.tolist(), lengths.tolist(), strict=True)]
        texts = self.tokenizer.batch_decode(kept, skip_special_tokens=True)
        return [
            Action(
                closed_turn(turn_text(text, self.stop), ids, self.eos_token_ids, self.end_of_turn),
                tuple(ids),
                tuple(row[: len(ids)]),
            )
            for text, ids, row in zip(texts, kept, logprobs.tolist(), strict=True)
        ]

    def _sample(
        self, contexts: Sequence[Sequence[int]], max_new: int, greedy: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode up to ``max_new`` tokens after each context with a KV cache.

        Contexts are left-padded (each row ends where generation starts; positions count real
        tokens only). Identical contexts (a GRPO group) are prefilled once and their cache rows
        copied. A row leaves the batch, and its cache rows are dropped, as soon as it samples EOS
        or completes a stop string, so later steps only compute the rows still going.

        Returns:
            ``[B, max_new]`` sampled ids (pad after a row ends), their behaviour log-probs, and
            ``[B]`` lengths (up to and including EOS or the stop string's last token).
        """
        device, pad = self.device, self.pad_token_id
        cache, logits, attention_mask, position, padded = self._prefill(contexts, max_new)
        batch = len(contexts)
        tokens = torch.full((batch, max_new), pad, dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, max_new), device=device)
        lengths = torch.full((batch,), max_new, dtype=torch.long, device=device)
        active = torch.arange(batch, device=device)  # which rows of the output the batch's rows are
        eos = torch.tensor(self.eos_token_ids, device=device)
        stopper = _StopOnText(self.tokenizer, self.stop, 0, self._stop_triggers()) if self.stop else None
        warpers = self._warpers()
        step_forward = self._decode_step()
        for step in range(max_new):
            token, token_logprobs = self._draw(logits, warpers, greedy)
            tokens[active, step] = token
            logprobs[active, step] = token_logprobs
            finished = torch.isin(token, eos)
            if stopper is not None:
                finished |= stopper.rows_stopped(tokens[active, max(0, step + 1 - stopper.window) : step + 1])
            lengths[active[finished]] = step + 1
            going = (~finished).nonzero().squeeze(1)
            if step + 1 == max_new or len(going) == 0:
                break
            if len(going) < len(active):
                active, token, position = active[going], token[going], position[going]
                attention_mask = attention_mask[going]
                padded = padded and bool((attention_mask == 0).any())  # the padded rows may all be done
                cache.reorder_cache(going)
            if padded:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=1)
            mask = attention_mask if padded else None
            if step_forward is not None:
                logits = step_forward(token[:, None], position, cache, mask)[:, -1]
            else:
                logits = self.model(
                    input_ids=token[:, None],
                    attention_mask=mask,
                    position_ids=position,
                    use_cache=True,
                    **{self._cache_argument: cache},
                ).logits[:, -1]
            position = position + 1
        return tokens.cpu(), logprobs.cpu(), lengths.cpu()

    def _prefill(
        self, contexts: Sequence[Sequence[int]], max_new: int
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """One forward over the distinct contexts, left-padded; the cache then holds a row per context.

        Returns:
            The cache (with room for ``max_new`` more tokens), the last logits ``[B, V]``, the
            attention mask ``[B, T]``, the next position ``[B, 1]``, and whether any row is padded.
        """
        device, pad = self.device, self.pad_token_id
        unique: dict[tuple[int, ...], int] = {}
        copy_of = [unique.setdefault(tuple(context), len(unique)) for context in contexts]
        longest = max(len(context) for context in unique)
        input_ids = torch.full((len(unique), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(unique), longest), dtype=torch.long)
        for row, context in enumerate(unique):
            input_ids[row, longest - len(context) :] = torch.tensor(context, dtype=torch.long)
            attention_mask[row, longest - len(context) :] = 1
        padded = bool((attention_mask == 0).any())
        positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device) if padded else None,
            position_ids=positions.to(device),
            use_cache=True,
            **({"logits_to_keep": 1} if self._keeps_logits else {}),
        )
        cache, logits = output[self._cache_argument], output.logits[:, -1]
        rows = torch.tensor(copy_of, device=device)
        if len(unique) < len(contexts):
            cache.reorder_cache(rows)
            logits = logits[rows]
        reserve(cache, longest + max_new)  # new tokens are written in place, not appended by torch.cat
        attention_mask, position = attention_mask.to(device)[rows], positions[:, -1:].to(device)[rows] + 1
        return cache, logits, attention_mask, position, padded

    def _draw(
        self, logits: torch.Tensor, warpers: Sequence[Any], greedy: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per row from ``logits`` ``[B, V]`` (temperature, then top-k / top-p), and its log-prob."""
        scores = logits.float() / self.temperature if self.temperature != 1.0 else logits.float()
        for warper in warpers:
            scores = warper(None, scores)  # type: ignore[arg-type]  (they read the scores only)
        step_logprobs = torch.log_softmax(scores, dim=-1)
        if greedy:
            token = scores.argmax(dim=-1)
        else:
            token = torch.multinomial(step_logprobs.exp(), num_samples=1).squeeze(1)
        return token, step_logprobs.gather(1, token[:, None]).squeeze(1)

    def _decode_step(self) -> Any:
        """The fast one-token step, or ``None`` (then say once, at INFO level, why not)."""
        step = decode_step(self.model) if self.fast_decode else None
        if step is None and self.fast_decode and not self._told_why_slow:
            logger.info("decoding with the transformers forward: %s", unsupported_reason(self.model))
            self._told_why_slow = True
        return step

    def _warpers(self) -> list[LogitsProcessor]:
        """What turns ``logits / temperature`` into the scores a token is drawn from."""
        warpers: list[LogitsProcessor] = []
        if self.top_k:
            warpers.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1:
            warpers.append(TopPLogitsWarper(self.top_p))
        return warpers

    def _stop_triggers(self) -> torch.Tensor | None:
        """Per token id: can this token complete a stop string? ``None``: any token can.

        A stop string that ends in a visible ASCII character can only be completed by a token whose
        own text holds that character, so after most tokens no text needs decoding.
        """
        if self._triggers is None:
            finals = {stop[-1] for stop in self.stop if stop}
            if not finals or not all(final.isascii() and not final.isspace() for final in finals):
                self._triggers = False
            else:
                size = max(len(self.tokenizer), self.model.get_output_embeddings().weight.shape[0])
                pieces = self.tokenizer.batch_decode([[index] for index in range(len(self.tokenizer))])
                triggers = torch.ones(size, dtype=torch.bool)  # ids the tokenizer does not know: check
                triggers[: len(pieces)] = torch.tensor([any(f in piece for f in finals) for piece in pieces])
                self._triggers = triggers
        return self._triggers if isinstance(self._triggers, torch.Tensor) else None


class _StopOnText(StoppingCriteria):
    """Stops a row once its generated text contains a stop string; records where, per row.

    Args:
        tokenizer: decodes the generated tokens.
        stops: the stop strings.
        prompt_length: the ``input_ids`` columns before generation starts.
        triggers: optional ``[vocab]`` mask of the tokens that can complete a stop string; rows
            whose last token is not one are not decoded.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[str],
        prompt_length: int,
        triggers: torch.Tensor | None = None,
    ) -> None:
        self.tokenizer, self.stops, self.prompt_length = tokenizer, tuple(stops), prompt_length
        self.triggers = triggers
        # A token decodes to at least one byte, so this many tokens always cover a stop string.
        self.window = max((len(stop.encode()) for stop in stops), default=1) + 1
        self.stopped_at: dict[int, int] = {}

    def rows_stopped(self, generated: torch.Tensor) -> torch.Tensor:
        """``[B]``: does the text of each row's generated tokens (``[B, n]``) hold a stop string?"""
        done = torch.zeros(generated.shape[0], dtype=torch.bool, device=generated.device)
        if self.triggers is None:
            candidates = torch.arange(generated.shape[0], device=generated.device)
        else:
            self.triggers = self.triggers.to(generated.device)
            candidates = self.triggers[generated[:, -1]].nonzero().squeeze(1)
        if len(candidates):
            tails = self.tokenizer.batch_decode(
                generated[candidates, -self.window :].tolist(), skip_special_tokens=True
            )
            hits = [any(stop in tail for stop in self.stops) for tail in tails]
            done[candidates] = torch.tensor(hits, device=generated.device)
        return done

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        done = self.rows_stopped(input_ids[:, self.prompt_length :])
        for row in done.nonzero().squeeze(1).tolist():
            self.stopped_at.setdefault(row, generated)
        return done.to(input_ids.device)
