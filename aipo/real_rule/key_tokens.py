"""The real-model experiment's key-token diagnostic: is the made-up verb written alone, or only in a reply?

    python -m aipo.real_rule.key_tokens results/real_rule [PROBLEMS]

For the warm-up and every arm's final model of a finished ``aipo demo`` run on the rule task
(``examples/real_rule.yaml``), the log-probability of a held-out problem's key tokens (``v + v``,
the verb's step) in two contexts (:mod:`aipo.demo.curve`)::

    alone     prompt, "Step 1: "                                   (as in evaluation)
    in reply  prompt, the Reasoning consult, its reply up to "Step 1: "  (where AIPO learns it)

    log p(key | context) = sum_t log pi_theta(key_t | context, key_<t),  mean over PROBLEMS
    test problems that start with the verb (default 48), then mean ± std over seeds.

SmolLM2's tokenizer writes every digit and the space before it as tokens of their own, so the
key's own tokens are the ones a rollout produces. Writes ``key_tokens.json`` and
``key_tokens.md`` beside the run's ``demo.json``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aipo.demo.curve import key_contexts, key_logprobs
from aipo.real_rule.saved import load_saved, model_directories, read_run, report, summarise

CONTEXTS = ("key_logprob_alone", "key_logprob_in_reply")


def measure(run: Path, problems: int = 48) -> dict[str, Any]:
    """The key-token log-probs of every model of the run in ``run`` (module docstring)."""
    results = read_run(run)
    settings = results["settings"]["demo"]
    contexts = key_contexts(settings["eval_env"]["kwargs"], problems)
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for seed, models in model_directories(run, results).items():
        per_seed[seed] = {
            name: key_logprobs(load_saved(settings, path), contexts) for name, path in models.items()
        }
    return {"problems": len(contexts), "seeds": per_seed, "summary": summarise(per_seed, CONTEXTS)}


def markdown(measured: Mapping[str, Any]) -> str:
    """The table of :func:`measure`'s summary, one row per model."""
    rows = [
        "| model | log p(key) alone | log p(key) in a reply | gap (reply − alone) |",
        "|---|---|---|---|",
    ]
    for name, numbers in measured["summary"].items():
        alone, reply = numbers["key_logprob_alone"], numbers["key_logprob_in_reply"]
        gap = reply["mean"] - alone["mean"]
        rows.append(
            f"| {name} | {alone['mean']:.2f} ± {alone['std']:.2f} | {reply['mean']:.2f} ± {reply['std']:.2f} "
            f"| {gap:+.2f} |"
        )
    seeds = len(measured["seeds"])
    rows.append(
        f"\nNats, summed over the key's tokens, mean over {measured['problems']} held-out problems that "
        f"start with the verb, then mean ± std over {seeds} seed(s) (aipo/real_rule/key_tokens.py)."
    )
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) not in (1, 2):
        raise SystemExit("usage: python -m aipo.real_rule.key_tokens RESULTS_DIR [PROBLEMS]")
    run = Path(argv[0])
    report(run, "key_tokens", lambda: measure(run, int(argv[1]) if len(argv) == 2 else 48), markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
