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

The behaviour log-prob of a sampled token is ``log softmax(warped logits / temperature)`` at that
token, taken from the very distribution it was sampled from (after ``top_k`` / ``top_p``). With the
defaults (``top_k=0``, ``top_p=1``) that is the full tempered softmax a learner recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from policies.base import Action, Policy

TINY = "tiny"


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
        stop: strings that end a turn; the default ends a turn after a consult request.
        batch_size: the most sequences generated at once; larger batches are split.
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
        stop: Sequence[str] = ("</consult>",),
        batch_size: int = 64,
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
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ValueError("the tokenizer has neither a pad token nor an EOS token; set one of them")
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        self.chat_template = chat_template
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.top_k, self.top_p = top_k, top_p
        self.stop, self.batch_size = tuple(stop), batch_size
        eos = model.generation_config.eos_token_id
        eos = tokenizer.eos_token_id if eos is None else eos
        self.eos_token_ids: tuple[int, ...] = tuple(eos) if isinstance(eos, list) else (eos,)

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
            name_or_path: a ``save_pretrained`` directory, a hub id, or ``"tiny"`` for a fresh
                model from :mod:`policies.tiny` (no download).
            dtype: the weights' dtype (``"auto"``: as saved).
            device: where the model runs (default: CUDA when available, else CPU).
            tiny_options: keyword arguments of :func:`policies.tiny.build_tiny_model`.
            **settings: keyword arguments of :class:`HFPolicy`.
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
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
        """Token ids that open an episode: the chat-formatted user turn, or BOS + raw text."""
        if self.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)
        return list(self.tokenizer(text, split_special_tokens=True)["input_ids"])

    def encode_text(self, text: str) -> list[int]:
        """Token ids of text spliced into the transcript (no special tokens added or parsed)."""
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
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(contexts), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(contexts), longest), dtype=torch.long)
        for row, context in enumerate(contexts):  # left padding: every row ends where generation starts
            input_ids[row, longest - len(context) :] = torch.tensor(list(context), dtype=torch.long)
            attention_mask[row, longest - len(context) :] = 1
        recorder = _LogprobRecorder()
        stopper = _StopOnText(self.tokenizer, self.stop, longest)
        warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(self.temperature)]
        if self.top_k:
            warpers.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1:
            warpers.append(TopPLogitsWarper(self.top_p))
        was_training = self.model.training
        self.model.eval()
        try:
            # The warpers are ours, not generate's, so that the recorder sees the final distribution.
            sequences = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                do_sample=not greedy,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new,
                logits_processor=LogitsProcessorList([*warpers, recorder]),
                stopping_criteria=StoppingCriteriaList([stopper]) if self.stop else None,
                pad_token_id=pad,
                eos_token_id=list(self.eos_token_ids),
            )
        finally:
            self.model.train(was_training)
        generated = sequences[:, longest:].cpu()
        logprobs = recorder.finish(sequences).cpu()
        return [
            self._action(generated[row], logprobs[row], stopper.stopped_at.get(row))
            for row in range(len(contexts))
        ]

    def _action(self, ids: torch.Tensor, logprobs: torch.Tensor, stopped_at: int | None) -> Action:
        length = ids.shape[0] if stopped_at is None else stopped_at
        for position, token in enumerate(ids[:length].tolist()):
            if token in self.eos_token_ids:
                length = position + 1
                break
        kept = ids[:length].tolist()
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Action(text, tuple(kept), tuple(logprobs[:length].tolist()))


class _LogprobRecorder(LogitsProcessor):
    """Records ``log p`` of each sampled token from the distribution it was sampled from.

    A processor sees step ``t``'s scores before the token is drawn; the drawn token shows up as
    the last input id at step ``t + 1``, and the last one in the returned sequences.
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """The ``[batch, generated]`` log-probs, given the sequences ``generate`` returned."""
        if self._last is not None:
            self.steps.append(self._last.gather(1, sequences[:, -1:]).squeeze(1))
            self._last = None
        return torch.stack(self.steps, dim=1)


class _StopOnText(StoppingCriteria):
    """Stops a row once its generated text contains a stop string; records where, per row."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], prompt_length: int) -> None:
        self.tokenizer, self.stops, self.prompt_length = tokenizer, tuple(stops), prompt_length
        # A token decodes to at least one byte, so this many tokens always cover a stop string.
        self.window = max((len(stop.encode()) for stop in stops), default=1) + 1
        self.stopped_at: dict[int, int] = {}

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        done = [any(stop in tail for stop in self.stops) for tail in tails]
        for row, stopped in enumerate(done):
            if stopped:
                self.stopped_at.setdefault(row, generated)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
