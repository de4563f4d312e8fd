"""Shared fixtures: where the real benchmark files live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; required in CI, skipped elsewhere if absent."""
    if not (SHARED_DATA / "math500.jsonl").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the benchmark files at {SHARED_DATA}")
        pytest.skip(f"benchmark files not found at {SHARED_DATA}")
    return SHARED_DATA
