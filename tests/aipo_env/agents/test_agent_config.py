"""Typed agent configs: validation messages, files, what build_agents makes of them, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest
from pydantic import ValidationError

from aipo_env.agents import AgentConfig, AgentsConfig, ReferenceVerify, build_agents
from aipo_env.agents.openai_backend import OpenAIAgent
from aipo_env.agents.vllm_backend import MISSING_VLLM, vllm_available

ROLES = ("verify", "knowledge", "reasoning")
SERVER = {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "helper"}


def test_an_inline_api_key_is_refused_with_the_way_to_fix_it():
    with pytest.raises(ValidationError, match="api_key_env"):
        AgentConfig.model_validate({"backend": {**SERVER, "api_key": "sk-123"}})


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({**SERVER, "base_url": "127.0.0.1:8000"}, "must start with http"),
        ({"kind": "claude"}, "kind"),
        ({**SERVER, "max_concurrency": 0}, "max_concurrency"),
        ({**SERVER, "temprature": 0.5}, "temprature"),
    ],
)
def test_bad_backend_settings_name_the_field(backend, message):
    with pytest.raises(ValidationError, match=message):
        AgentConfig.model_validate({"backend": backend})


def test_the_cache_is_on_by_default_only_for_greedy_decoding():
    greedy = AgentConfig.model_validate({"backend": SERVER})
    sampled = AgentConfig.model_validate({"backend": SERVER, "sampling": {"temperature": 0.8}})
    forced = AgentConfig.model_validate({"backend": SERVER, "sampling": {"temperature": 0.8}, "cache": True})
    assert greedy.uses_cache and not sampled.uses_cache and forced.uses_cache
    assert not greedy.reference_access


def test_a_config_file_builds_one_agent_per_configured_role(tmp_path):
    config = {
        "cache_path": str(tmp_path / "c.sqlite"),
        "verify": {"backend": {"kind": "reference"}},
        "reasoning": {"backend": SERVER, "reference_access": True},
    }
    (tmp_path / "agents.json").write_text(json.dumps(config))
    (tmp_path / "agents.yaml").write_text(
        "verify:\n  backend: {kind: reference}\nreasoning:\n  backend:\n"
        + "".join(f"    {key}: {value}\n" for key, value in SERVER.items())
        + "  reference_access: true\n"
    )
    for name in ("agents.json", "agents.yaml"):
        agents = build_agents(str(tmp_path / name), ROLES)
        assert set(agents) == {"verify", "reasoning"}
        assert isinstance(agents["verify"], ReferenceVerify) and isinstance(agents["reasoning"], OpenAIAgent)
        assert agents["reasoning"].reference_access


def test_broken_config_files_say_which_file_and_what(tmp_path):
    (tmp_path / "bad.yaml").write_text("verify: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: cannot parse"):
        build_agents(str(tmp_path / "bad.yaml"), ROLES)
    (tmp_path / "wrong.json").write_text(json.dumps({"critic": {"backend": SERVER}}))
    with pytest.raises(ValueError, match="wrong.json: invalid agents config"):
        build_agents(str(tmp_path / "wrong.json"), ROLES)
    with pytest.raises(ValueError, match="no such agents config"):
        build_agents(str(tmp_path / "missing.yaml"), ROLES)


def test_a_mapping_may_mix_agents_configs_and_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPO_CACHE_DIR", str(tmp_path))
    agents = build_agents(
        {
            "verify": "reference",
            "knowledge": {"backend": {"kind": "retrieval"}},
            "reasoning": {"backend": SERVER},
        },
        ROLES,
    )
    assert type(agents["knowledge"]).__name__ == "RetrievalKnowledge"
    assert agents["reasoning"].cache.path == tmp_path / "consults.sqlite"
    with pytest.raises(ValueError, match="must be an Agent, an AgentConfig or 'reference'"):
        build_agents({"verify": 3}, ROLES)


def test_envs_accept_a_typed_config(tmp_path):
    config = AgentsConfig.model_validate({"knowledge": {"backend": {"kind": "retrieval", "top_k": 1}}})
    env = gym.make("aipo/Arithmetic-v0", agents=config)
    env.reset(seed=0)
    obs, _, _, _, info = env.step('<consult agent="knowledge">How do I multiply with carries?</consult>')
    assert info["action"]["outcome"] == "answered" and '<feedback agent="knowledge">' in obs
    obs, _, _, _, info = env.step('<consult agent="verify">Is 2 + 2 = 4?</consult>')
    assert info["action"]["outcome"] == "refused"
    env.close()


@pytest.mark.skipif(vllm_available(), reason="vllm is installed here")
def test_the_vllm_backend_says_how_to_install_it():
    config = AgentsConfig.model_validate({"reasoning": {"backend": {"kind": "vllm", "model": "m"}}})
    with pytest.raises(ImportError, match=r"pip install 'aipo\[vllm\]'") as raised:
        build_agents(config, ROLES)
    assert str(raised.value) == MISSING_VLLM


def test_importing_the_env_loads_no_model_library():
    code = (
        "import sys, aipo_env, aipo_env.agents, aipo_env.agents.openai_backend, "
        "aipo_env.agents.transformers_backend, aipo_env.agents.vllm_backend, aipo_env.agents.local_server\n"
        "print(sorted(m for m in ('torch', 'transformers', 'openai', 'vllm') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
