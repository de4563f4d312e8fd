"""The base of every options model in the project: an unknown key is an error, never ignored.

A typo in a YAML config (``optim.lr_rate``) or an agent spec must fail with the key's name, not
run with a default. Every config model (``algorithms.config``, the agents' specs, the
experiments' settings) derives from :class:`Strict`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A pydantic model that refuses unknown keys (``model_*`` field names allowed)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
