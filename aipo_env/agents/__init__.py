"""Consult agents: the interface, the offline reference agents, and how an env gets its agents."""

from __future__ import annotations

from collections.abc import Mapping

from aipo_env.agents.base import Agent, AgentReply, ConsultRequest
from aipo_env.agents.reference import (
    ReferenceKnowledge,
    ReferenceReasoning,
    ReferenceVerify,
    bundled_knowledge,
    reference_agents,
)

AgentsSpec = str | Mapping[str, "Agent | str"] | None


def build_agents(spec: AgentsSpec, names: tuple[str, ...]) -> dict[str, Agent]:
    """Turn the env's ``agents=`` argument into one agent per role.

    Args:
        spec: ``"reference"`` (offline helpers for every role), ``None`` (no helpers: every
            consult is refused), or a mapping from role to an :class:`Agent` instance or to
            ``"reference"``. Roles missing from the mapping get no agent.
        names: the roles the protocol allows.

    Raises:
        ValueError: for an unknown spec string or role name, with the accepted values.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        if spec != "reference":
            raise ValueError(f"agents={spec!r} is not known; use 'reference', None or a dict role -> Agent")
        return {name: agent for name, agent in reference_agents().items() if name in names}
    built: dict[str, Agent] = {}
    defaults = reference_agents()
    for role, agent in spec.items():
        if role not in names:
            raise ValueError(f"agents has role {role!r}; the protocol allows {', '.join(names)}")
        if agent == "reference":
            if role not in defaults:
                raise ValueError(f"there is no reference agent for role {role!r}")
            built[role] = defaults[role]
        elif isinstance(agent, Agent):
            built[role] = agent
        else:
            raise ValueError(f"agents[{role!r}] must be an Agent or 'reference', got {type(agent).__name__}")
    return built


__all__ = [
    "Agent",
    "AgentReply",
    "AgentsSpec",
    "ConsultRequest",
    "ReferenceKnowledge",
    "ReferenceReasoning",
    "ReferenceVerify",
    "build_agents",
    "bundled_knowledge",
    "reference_agents",
]
