"""Fixtures for the sandbox tests: one sandbox per module, in the strongest mode that works here."""

from __future__ import annotations

import pytest

from aipo_env.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """A two-worker sandbox with short limits, isolated as well as this machine allows."""
    with Sandbox(Limits(wall_seconds=5, cpu_seconds=5, memory_mb=256), workers=2) as box:
        yield box
