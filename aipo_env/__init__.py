"""aipo_env: Gymnasium text environments for reasoning with consult actions.

Importing the package registers the ``aipo/...`` ids::

    import gymnasium as gym
    import aipo_env

    env = gym.make("aipo/Arithmetic-v0", level=3)
    obs, info = env.reset(seed=0)

The env never imports torch, so any learner (PyTorch, JAX, an API model) can use it.
"""

from aipo_env.core import ReasoningEnv
from aipo_env.episode import EpisodeRecord, Segment
from aipo_env.protocol import ActionKind, ParsedAction, Protocol
from aipo_env.registration import ENV_IDS, register_envs
from aipo_env.tasks.base import Problem, Score, Task
from aipo_env.tool_calls import ToolCallProtocol

register_envs()

__all__ = [
    "ENV_IDS",
    "ActionKind",
    "EpisodeRecord",
    "ParsedAction",
    "Problem",
    "Protocol",
    "ReasoningEnv",
    "Score",
    "Segment",
    "Task",
    "ToolCallProtocol",
    "register_envs",
]
