"""Models shipped inside the package, named ``warmup:NAME`` wherever a model path is taken.

A run that starts from a random tiny model never solves a problem, so every group's rewards are
equal and nothing is learned. A shipped warm-up already solves the easy problems some of the
time, so RL has a signal from its first step, and no run has to pay for the warm-up again.

* ``warmup:arithmetic``: the tiny Qwen2-style model (~200k parameters, byte tokenizer) after the
  demo's supervised warm-up (``examples/demo.yaml``: 1000 steps on 20,000 worked solutions of
  ``aipo/Arithmetic-v0`` levels 1-2, 20% of them consulting the Reasoning agent), seed 0.

Each lives in ``policies/warmups/NAME/`` with a ``SHA256SUMS`` file that :func:`resolve`
checks before use; ``python -m aipo.demo.warmups NAME`` retrains it the same way (see
:mod:`aipo.demo.warmups`).
"""

from __future__ import annotations

from pathlib import Path

from aipo_env import pretrained

PREFIX = "warmup:"
WARMUPS_DIR = Path(__file__).with_name("warmups")
CHECKSUMS = pretrained.CHECKSUMS


class ShippedModelError(ValueError):
    """A ``warmup:`` name that is not shipped, or a shipped model whose files changed."""


def shipped() -> list[str]:
    """The names of the shipped warm-ups."""
    if not WARMUPS_DIR.is_dir():
        return []
    return sorted(path.name for path in WARMUPS_DIR.iterdir() if (path / CHECKSUMS).is_file())


def resolve(source: str) -> str:
    """The directory a model source names, checked; any other source is returned as it is.

    ``warmup:NAME`` is the checked directory of that shipped model; a registry model's name
    (``smollm2-135m-instruct``, ...) or a ``.gguf`` file is resolved by :mod:`aipo_env.pretrained`.

    Raises:
        ShippedModelError: an unknown warm-up, a registry model that is not prepared, or files
            that do not match their checksums.
    """
    if not source.startswith(PREFIX):
        try:
            return pretrained.resolve(source)
        except pretrained.ModelSourceError as error:
            raise ShippedModelError(str(error)) from error
    name = source[len(PREFIX) :]
    directory = WARMUPS_DIR / name
    if name not in shipped():
        known = ", ".join(f"{PREFIX}{known}" for known in shipped()) or "none"
        raise ShippedModelError(f"no shipped model {source!r}; shipped: {known}")
    wrong = pretrained.damaged(directory)
    if wrong:
        raise ShippedModelError(
            f"the shipped model {source!r} is damaged ({', '.join(wrong)} changed); retrain it with "
            f"`python -m aipo.demo.warmups {name}` or restore {directory} from the repository"
        )
    return str(directory)
