"""A tiny LM that writes scripted turns but reports their log-probs under its own weights.

Random tiny models never consult and never answer correctly, so every advantage would be zero.
This policy consults the Reasoning agent with probability ``consult_prob`` (drawn from torch's
global RNG, so checkpoints must restore it) and otherwise answers with the last number of the
transcript, which on level-1 arithmetic is correct exactly when the agent revealed the step.
Its tokens and log-probs are real: the learner trains the model on them as on sampled turns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from algorithms.forward import token_logprobs
from policies import Action, HFPolicy, last_number_answer

CONSULT = '<consult agent="reasoning">What is the next step?</consult>'


class ForcedPolicy(HFPolicy):
    def __init__(self, base: HFPolicy, consult_prob: float = 0.5) -> None:
        super().__init__(base.model, base.tokenizer, temperature=base.temperature)
        self.consult_prob = consult_prob

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        actions = []
        for context in contexts:
            transcript = self.tokenizer.decode(list(context), skip_special_tokens=True)
            consulted = "<feedback agent=" in transcript
            if not consulted and float(torch.rand(())) < self.consult_prob:
                text, ids = CONSULT, self.encode_text(CONSULT)
            else:
                text = last_number_answer(transcript)
                ids = [*self.encode_text(text), self.tokenizer.eos_token_id]
            sequence = torch.tensor([[*context, *ids]], device=self.device)
            with torch.no_grad():
                logprobs, _ = token_logprobs(
                    self.model, sequence, torch.ones_like(sequence), temperature=self.temperature
                )
            actions.append(Action(text, tuple(ids), tuple(logprobs[0, len(context) :].tolist())))
        return actions
