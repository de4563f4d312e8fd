"""Running untrusted Python programs: resource limits, isolation from the host, a worker pool.

The code tasks run model-written programs here. Nothing in this package imports torch or any
third-party library but tqdm.

* :mod:`~aipo_env.sandbox.limits`: what one execution may use (:class:`Limits`).
* :mod:`~aipo_env.sandbox.isolation`: bubblewrap, ``unshare`` or limits only, detected at run
  time (:func:`detect_isolation`), and what each mode guarantees.
* :mod:`~aipo_env.sandbox.seccomp`: the system-call filter of a bubblewrap sandbox.
* :mod:`~aipo_env.sandbox.cgroup`: a memory cgroup per execution (``Limits.total_memory_mb``).
* :mod:`~aipo_env.sandbox.uids`: unprivileged uids leased machine-wide, one per live execution.
* :mod:`~aipo_env.sandbox.runner`: one execution from start to clean-up (:func:`execute`).
* :mod:`~aipo_env.sandbox.dialogue`: an execution the parent talks to while it runs (:func:`converse`).
* :mod:`~aipo_env.sandbox.pool`: :class:`Sandbox`, which runs executions in parallel.
"""

from aipo_env.sandbox.dialogue import Channel, ChannelClosed, NoAnswer, converse
from aipo_env.sandbox.isolation import (
    MODES,
    Isolation,
    Mode,
    SandboxUnavailable,
    SandboxWarning,
    detect_isolation,
)
from aipo_env.sandbox.limits import Limits
from aipo_env.sandbox.pool import Job, Sandbox
from aipo_env.sandbox.runner import ExecutionResult, execute

__all__ = [
    "MODES",
    "Channel",
    "ChannelClosed",
    "NoAnswer",
    "converse",
    "ExecutionResult",
    "Isolation",
    "Job",
    "Limits",
    "Mode",
    "Sandbox",
    "SandboxUnavailable",
    "SandboxWarning",
    "detect_isolation",
    "execute",
]
