from __future__ import annotations

from pathlib import Path

import pytest

from algorithms.config import ConfigError, EvalConfig, TrainConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_with_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, "steps: 3\noptim:\n  lr: 1.0e-4\nloss:\n  agent_mode: mask\n")
    config = load_config(
        TrainConfig, path, ["optim.lr=3e-4", "loss.agent_mode=luffy", "env.kwargs.level=[1, 3]", "bf16=true"]
    )
    assert config.steps == 3 and config.optim.lr == 3e-4 and config.loss.agent_mode == "luffy"
    assert config.env.kwargs["level"] == [1, 3] and config.bf16 is True


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lrr=1", "optim.lrr"),
        ("loss.agent_mode=sometimes", "loss.agent_mode"),
        ("rollout.group_size=0", "rollout.group_size"),
        ("steps=many", "steps"),
        ("loss.agent_clip_min=5", "agent_clip_min"),
        ("rollout.guided_per_group=9", "guided_per_group"),
    ],
)
def test_bad_keys_and_values_are_named(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(TrainConfig, None, [override])


def test_guided_and_reference_episodes_must_fit_in_a_group() -> None:
    fits = load_config(TrainConfig, None, ["rollout.guided_per_group=2", "rollout.reference_per_group=2"])
    assert fits.rollout.reference_per_group == 2 and fits.rollout.group_size == 4
    with pytest.raises(ConfigError, match=r"reference_per_group \(3\) cannot exceed group_size \(4\)"):
        load_config(TrainConfig, None, ["rollout.guided_per_group=2", "rollout.reference_per_group=3"])


def test_malformed_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TrainConfig, None, ["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TrainConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TrainConfig, write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not a section"):
        load_config(TrainConfig, None, ["steps=3", "steps.inner=4"])


def test_eval_config_defaults_validate() -> None:
    config = load_config(EvalConfig, None, ["samples=8", "policy=never_consult"])
    assert config.samples == 8 and config.policy == "never_consult"
