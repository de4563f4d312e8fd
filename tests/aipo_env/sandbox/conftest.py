"""Fixtures for the sandbox tests: one sandbox per module, in the strongest mode that works here.

With ``AIPO_REQUIRE_BWRAP=1`` (set by ``.ci/run``) a machine where bubblewrap does not work
fails the sandbox tests instead of running them in a weaker mode with skips.
"""

from __future__ import annotations

import os

import pytest

from aipo_env.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """A two-worker sandbox with short limits, isolated as well as this machine allows."""
    with Sandbox(Limits(wall_seconds=5, cpu_seconds=5, memory_mb=256), workers=2) as box:
        if os.environ.get("AIPO_REQUIRE_BWRAP") == "1":
            assert box.isolation.mode == "bwrap", f"bubblewrap is required here, got {box.isolation}"
        yield box
