"""Shipped warm-ups: ``warmup:NAME`` loads a checked model; a damaged or unknown one is refused."""

from __future__ import annotations

import shutil

import pytest

from algorithms.config import ModelConfig
from algorithms.models import load_policy
from policies import HFPolicy, shipped
from policies.hf import TINY


def test_other_names_pass_through_unchanged():
    assert shipped.resolve(TINY) == TINY
    assert shipped.resolve("runs/x/final") == "runs/x/final"


def test_the_arithmetic_warmup_is_shipped_and_loads():
    assert "arithmetic" in shipped.shipped()
    policy = HFPolicy.from_pretrained("warmup:arithmetic", device="cpu", max_new_tokens=8)
    assert sum(parameter.numel() for parameter in policy.model.parameters()) > 100_000


def test_unknown_and_damaged_warmups_are_refused_with_the_fix(tmp_path, monkeypatch):
    with pytest.raises(
        shipped.ShippedModelError, match="no shipped model 'warmup:nope'; shipped: warmup:arithmetic"
    ):
        shipped.resolve("warmup:nope")
    copy = tmp_path / "arithmetic"
    shutil.copytree(shipped.WARMUPS_DIR / "arithmetic", copy)
    monkeypatch.setattr(shipped, "WARMUPS_DIR", tmp_path)
    assert shipped.resolve("warmup:arithmetic") == str(copy)
    weights = next(path for path in copy.iterdir() if path.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(
        shipped.ShippedModelError, match=r"damaged \(model.safetensors changed\).*python -m aipo.demo.warmups"
    ):
        shipped.resolve("warmup:arithmetic")
    from algorithms.config import ConfigError

    with pytest.raises(ConfigError, match="model.name_or_path: the shipped model"):
        load_policy(ModelConfig(name_or_path="warmup:arithmetic"), device="cpu")
