"""Typed configuration of the helper agents: one backend per role, chosen in one place.

A config is plain data (pydantic), so it can live in a JSON or YAML file and be checked before
anything is started::

    {
      "cache_path": "runs/consults.sqlite",
      "verify":    {"backend": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1",
                                "model": "Qwen/Qwen2.5-7B-Instruct", "max_concurrency": 16}},
      "knowledge": {"backend": {"kind": "retrieval", "knowledge_path": "kb.jsonl", "top_k": 3}},
      "reasoning": {"backend": {"kind": "transformers", "model": "runs/helper"},
                    "sampling": {"temperature": 0.7, "max_tokens": 256}}
    }

A role left out (or ``null``) has no agent: its consults are refused. ``{"kind": "reference"}``
selects the offline reference agent for that role. API keys are never part of a config: name the
environment variable that holds one in ``api_key_env``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from aipo_env.strict import Strict

_DEFAULT_CACHE = Path("~/.cache/aipo/consults.sqlite")


class _Strict(Strict):
    model_config = ConfigDict(frozen=True)


class SamplingConfig(_Strict):
    """How a model backend decodes a reply.

    Attributes:
        temperature: 0 is greedy decoding (and turns the reply cache on by default).
        top_p: nucleus sampling mass.
        max_tokens: the longest reply in tokens (replies that hit it are counted in the agent's stats).
        seed: sampling seed passed to the backend, where it supports one.
        stop: strings that end the reply.
    """

    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class ReferenceBackend(_Strict):
    """The offline reference agent of the role (reads the ground truth; needs no model)."""

    kind: Literal["reference"] = "reference"


class OpenAIBackend(_Strict):
    """Any OpenAI-compatible chat-completions server: ``vllm serve``, SGLang, ``transformers serve``.

    Attributes:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows.
        api_key_env: the environment variable holding the API key; ``None`` for local servers
            that need none.
        timeout_s: the deadline of one request attempt as a whole (connect, wait and the whole
            reply), however slowly the server sends; a request past it is cancelled and fails
            with ``RequestTimeout``.
        max_retries: retries after a connection error, timeout, HTTP 429 or 5xx; each retry
            has its own ``timeout_s``, so a consult takes at most ``(max_retries + 1) *
            timeout_s`` plus the backoff delays before it counts as failed.
        backoff_s: first retry delay; see :func:`aipo_env.agents.openai_backend.backoff_delay`.
        max_concurrency: requests of this agent in flight at once, across all callers.
        logprobs: ask for per-token log-probabilities of the reply (when the server gives them);
            learners use them as ``log pi_agent`` in AIPO's ``raw``/``luffy``/``aipo`` modes.
        extra_body: extra JSON fields for the request (server-specific options).
    """

    kind: Literal["openai"] = "openai"
    base_url: str
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0)
    max_concurrency: int = Field(8, ge=1, le=1024)
    logprobs: bool = False
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "an API key may not be written into the config: put it in an environment variable "
                "and give that variable's name as api_key_env (e.g. api_key_env: OPENAI_API_KEY)"
            )
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        return url.rstrip("/")


class TransformersBackend(_Strict):
    """A ``transformers`` causal LM loaded in this process; pending consults are generated in batches.

    Attributes:
        model: a local directory or hub name (``from_pretrained``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        batch_size: the most consults generated together.
        batch_wait_s: how long the first pending consult waits for others to join its batch.
        timeout_s: how long a consult waits for its reply before it counts as failed.
        logprobs: return per-token log-probabilities of the reply (``log pi_agent`` for AIPO).
    """

    kind: Literal["transformers"] = "transformers"
    model: str = Field(min_length=1)
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(8, ge=1, le=1024)
    batch_wait_s: float = Field(0.005, ge=0)
    timeout_s: float = Field(300.0, gt=0)
    logprobs: bool = False


class VLLMBackend(_Strict):
    """A vLLM engine in this process (needs the ``vllm`` extra: ``pip install 'aipo[vllm]'``).

    Attributes:
        model: a local directory or hub name.
        tensor_parallel_size: GPUs the engine shards the model over.
        gpu_memory_utilization: the fraction of GPU memory vLLM may take.
        max_model_len: the longest prompt plus reply, in tokens (``None``: the model's own).
        logprobs: return per-token log-probabilities of the reply (``log pi_agent`` for AIPO).
    """

    kind: Literal["vllm"] = "vllm"
    model: str = Field(min_length=1)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=16)
    logprobs: bool = False


class RetrievalBackend(_Strict):
    """BM25 over a knowledge base (for the Knowledge role); see :mod:`aipo_env.agents.retrieval`.

    Attributes:
        knowledge_path: a JSONL file with ``title``, ``text`` and optional ``tags`` per line;
            ``None`` uses the bundled knowledge base.
        top_k: the most entries in one reply.
        context_weight: weight of the problem statement against the query in the ranking.
        task_knowledge: also search the entries the task brings (``Task.knowledge()``).
    """

    kind: Literal["retrieval"] = "retrieval"
    knowledge_path: Path | None = None
    top_k: int = Field(3, ge=1, le=100)
    context_weight: float = Field(0.3, ge=0)
    task_knowledge: bool = True


Backend = Annotated[
    ReferenceBackend | OpenAIBackend | TransformersBackend | VLLMBackend | RetrievalBackend,
    Field(discriminator="kind"),
]


class AgentConfig(_Strict):
    """One role's agent.

    Attributes:
        backend: where replies come from (``kind`` picks the backend).
        sampling: decoding settings of model backends.
        reference_access: whether the prompt shows the reference answer and solution; off by
            default for model agents. Reference agents always read the ground truth.
        system_prompt: replaces the role's built-in system prompt (:mod:`aipo_env.agents.prompts`).
        max_reply_chars: replies are cut to this many characters (marked ``[trimmed]``).
        max_prompt_chars: the problem and the transcript are trimmed to fit this many characters.
        cache: keep replies in the on-disk cache; ``None`` = on for greedy decoding only.
    """

    backend: Backend
    sampling: SamplingConfig = SamplingConfig()
    reference_access: bool = False
    system_prompt: str | None = None
    max_reply_chars: int = Field(1024, ge=32)
    max_prompt_chars: int = Field(12000, ge=256)
    cache: bool | None = None

    @property
    def uses_cache(self) -> bool:
        return self.sampling.greedy if self.cache is None else self.cache


class AgentsConfig(_Strict):
    """The agents of all roles, and the reply cache they share.

    Attributes:
        verify, knowledge, reasoning: each role's agent; ``None`` = no agent for that role.
        cache_path: the SQLite reply cache; ``None`` = ``$AIPO_CACHE_DIR/consults.sqlite`` or
            ``~/.cache/aipo/consults.sqlite``.
    """

    verify: AgentConfig | None = None
    knowledge: AgentConfig | None = None
    reasoning: AgentConfig | None = None
    cache_path: Path | None = None

    def roles(self) -> dict[str, AgentConfig]:
        """The configured roles, by name."""
        chosen = {"verify": self.verify, "knowledge": self.knowledge, "reasoning": self.reasoning}
        return {role: config for role, config in chosen.items() if config is not None}

    def resolved_cache_path(self) -> Path:
        """Where the reply cache lives (see :attr:`cache_path`)."""
        if self.cache_path is not None:
            return self.cache_path.expanduser()
        root = os.environ.get("AIPO_CACHE_DIR")
        return Path(root).expanduser() / "consults.sqlite" if root else _DEFAULT_CACHE.expanduser()

    @classmethod
    def from_file(cls, path: str | Path) -> AgentsConfig:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file.

        Raises:
            ValueError: the file is missing, unreadable, or not a valid config (the message
                names the file and each wrong field).
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(
                f"{path}: no such agents config file (agents= takes 'reference', null or the path "
                "of a .json/.yaml agents config)"
            )
        suffix = path.suffix.lower()
        if suffix not in (".json", ".yaml", ".yml"):
            raise ValueError(f"{path}: an agents config must be a .json, .yaml or .yml file")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if suffix == ".json" else _load_yaml(text)
        except ValueError as error:  # JSONDecodeError and YAMLError's wrapper both are ValueErrors
            raise ValueError(f"{path}: cannot parse the agents config: {error}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"{path}: invalid agents config: {_problems(error)}") from None


def _problems(error: ValidationError) -> str:
    """Each wrong field of a config as ``where: what``, on one line."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
        for item in error.errors()
    )


def _load_yaml(text: str) -> Any:
    import yaml  # only YAML config files need it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from None
