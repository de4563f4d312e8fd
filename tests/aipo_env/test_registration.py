"""Every registered id follows Gymnasium's conventions with offline helpers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import aipo_env


@pytest.mark.parametrize("env_id", list(aipo_env.ENV_IDS))
def test_check_env_passes_offline_with_reference_agents(env_id):
    env = gym.make(env_id, agents="reference")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["problem"]["id"]
    env.close()


def test_every_registered_id_is_listed_and_versioned():
    registered = {env_id for env_id in gym.registry if env_id.startswith("aipo/")}
    assert registered == set(aipo_env.ENV_IDS)
    assert all(env_id.rsplit("-v", 1)[1].isdigit() for env_id in registered)


def test_module_prefix_registration_works():
    env = gym.make("aipo_env:aipo/Arithmetic-v0", level=1)
    assert "Start with" in env.reset(seed=0)[0]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_steps_episodes_in_parallel(mode):
    envs = gym.make_vec("aipo/Arithmetic-v0", num_envs=2, vectorization_mode=mode, level=2)
    try:
        observations, infos = envs.reset(seed=[1, 2])
        assert len(observations) == 2 and all("Start with" in obs for obs in observations)
        observations, rewards, terminated, truncated, infos = envs.step(
            ('<consult agent="reasoning">step? é ∑ \\frac{1}{2}</consult>', "\\boxed{0}")
        )
        assert "é ∑ \\frac{1}{2}" in observations[0] and '<feedback agent="reasoning">' in observations[0]
        assert list(terminated) == [False, True]
        assert isinstance(rewards, np.ndarray) and rewards.shape == (2,)
    finally:
        envs.close()


def test_code_v0_is_kept_as_an_out_of_date_name_of_code_v1():
    with pytest.warns(Warning, match="out of date"):
        old = gym.make("aipo/Code-v0")
    new = gym.make("aipo/Code-v1")
    assert type(old.unwrapped) is type(new.unwrapped)
    old.close()
    new.close()


def test_aipo_envs_names_every_dataset_of_the_code_env():
    from aipo_env.tasks.code import DATASETS

    # "built-in" reads builtin, "stdin/stdout" stdin_stdout
    description = aipo_env.ENV_IDS["aipo/Code-v1"].lower().replace("-", "").replace("/", "_")
    assert [name for name in DATASETS if name not in description] == []
