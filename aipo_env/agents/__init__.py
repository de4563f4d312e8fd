"""Consult agents: the interface, the offline reference agents, and how an env gets its agents.

Model-backed agents (OpenAI-compatible servers, local ``transformers``, vLLM) and BM25 retrieval
are chosen per role in an :class:`~aipo_env.agents.config.AgentsConfig`; their heavy libraries
are imported only when such an agent is built or first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from aipo_env.agents.base import Agent, AgentReply, ConsultRequest
from aipo_env.agents.cache import ReplyCache
from aipo_env.agents.config import AgentConfig, AgentsConfig, SamplingConfig
from aipo_env.agents.reference import (
    ReferenceKnowledge,
    ReferenceReasoning,
    ReferenceVerify,
    bundled_knowledge,
    reference_agents,
)

AgentsSpec = str | Path | AgentsConfig | Mapping[str, "Agent | AgentConfig | str"] | None
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def build_agents(spec: AgentsSpec, names: tuple[str, ...]) -> dict[str, Agent]:
    """Turn the env's ``agents=`` argument into one agent per role.

    Args:
        spec: ``"reference"`` (offline helpers for every role), ``None`` (no helpers: every
            consult is refused), an :class:`AgentsConfig` or the path of one (``.json``,
            ``.yaml``), or a mapping from role to an :class:`Agent` instance, an
            :class:`AgentConfig` (or its dict form) or ``"reference"``. Roles missing from the
            mapping or config get no agent.
        names: the roles the protocol allows.

    Raises:
        ValueError: for an unknown spec string or role name, or an invalid config, with the
            accepted values.
    """
    if spec is None:
        return {}
    if isinstance(spec, (str, Path)) and str(spec).lower().endswith(_CONFIG_SUFFIXES):
        spec = AgentsConfig.from_file(spec)
    if isinstance(spec, str):
        if spec != "reference":
            raise ValueError(
                f"agents={spec!r} is not known; use 'reference', None, an AgentsConfig, the path of a "
                ".json/.yaml agents config, or a dict role -> Agent"
            )
        return {name: agent for name, agent in reference_agents().items() if name in names}
    if isinstance(spec, AgentsConfig):
        return _from_config(spec.roles(), spec.resolved_cache_path(), names)
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"agents must be 'reference', None, an AgentsConfig or a dict, got {type(spec).__name__}"
        )
    built: dict[str, Agent] = {}
    configs: dict[str, AgentConfig] = {}
    defaults = reference_agents()
    for role, agent in spec.items():
        if role not in names:
            raise ValueError(f"agents has role {role!r}; the protocol allows {', '.join(names)}")
        if isinstance(agent, str) and agent == "reference":
            if role not in defaults:
                raise ValueError(f"there is no reference agent for role {role!r}")
            built[role] = defaults[role]
        elif isinstance(agent, Agent):
            built[role] = agent
        elif isinstance(agent, (AgentConfig, Mapping)):
            configs[role] = AgentConfig.model_validate(agent)
        else:
            raise ValueError(
                f"agents[{role!r}] must be an Agent, an AgentConfig or 'reference', got {type(agent).__name__}"
            )
    built.update(_from_config(configs, AgentsConfig().resolved_cache_path(), names))
    return built


def build_agent(role: str, config: AgentConfig, cache: ReplyCache | None = None) -> Agent:
    """The agent ``config`` describes, answering as ``role``.

    Raises:
        ValueError: the backend cannot serve this role (retrieval is for ``knowledge`` only;
            a reference agent exists only for the three built-in roles).
        ImportError: the backend's optional package is missing (the message says how to add it).
    """
    return _BUILDERS[config.backend.kind](role, config, cache)


def _from_config(
    configs: Mapping[str, AgentConfig], cache_path: Path, names: tuple[str, ...]
) -> dict[str, Agent]:
    unknown = set(configs) - set(names)
    if unknown:
        raise ValueError(f"agents config has roles {sorted(unknown)}; the protocol allows {', '.join(names)}")
    cached = any(config.uses_cache and config.backend.kind in _MODEL_KINDS for config in configs.values())
    cache = ReplyCache(cache_path) if cached else None
    return {role: build_agent(role, config, cache) for role, config in configs.items()}


def _reference(role: str, config: AgentConfig, cache: ReplyCache | None) -> Agent:
    agents = reference_agents()
    if role not in agents:
        raise ValueError(f"there is no reference agent for role {role!r}")
    return agents[role]


def _retrieval(role: str, config: AgentConfig, cache: ReplyCache | None) -> Agent:
    from aipo_env.agents.retrieval import RetrievalKnowledge, read_knowledge

    backend = config.backend
    assert backend.kind == "retrieval"
    if role != "knowledge":
        raise ValueError(f"the retrieval backend answers the knowledge role only, not {role!r}")
    entries = read_knowledge(backend.knowledge_path) if backend.knowledge_path is not None else None
    return RetrievalKnowledge(
        entries,
        top_k=backend.top_k,
        context_weight=backend.context_weight,
        task_knowledge=backend.task_knowledge,
        max_reply_chars=config.max_reply_chars,
    )


def _openai(role: str, config: AgentConfig, cache: ReplyCache | None) -> Agent:
    from aipo_env.agents.openai_backend import OpenAIAgent

    return OpenAIAgent(role, config, cache)


def _transformers(role: str, config: AgentConfig, cache: ReplyCache | None) -> Agent:
    from aipo_env.agents.transformers_backend import TransformersAgent

    return TransformersAgent(role, config, cache)


def _vllm(role: str, config: AgentConfig, cache: ReplyCache | None) -> Agent:
    from aipo_env.agents.vllm_backend import VLLMAgent

    return VLLMAgent(role, config, cache)


_MODEL_KINDS = ("openai", "transformers", "vllm")
_BUILDERS: dict[str, Callable[[str, AgentConfig, ReplyCache | None], Agent]] = {
    "reference": _reference,
    "retrieval": _retrieval,
    "openai": _openai,
    "transformers": _transformers,
    "vllm": _vllm,
}


__all__ = [
    "Agent",
    "AgentConfig",
    "AgentReply",
    "AgentsConfig",
    "AgentsSpec",
    "ConsultRequest",
    "ReferenceKnowledge",
    "ReferenceReasoning",
    "ReferenceVerify",
    "ReplyCache",
    "SamplingConfig",
    "build_agent",
    "build_agents",
    "bundled_knowledge",
    "reference_agents",
]
