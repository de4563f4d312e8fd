"""The command line a newcomer uses first: envs, demo, play."""

from __future__ import annotations

from typer.testing import CliRunner

import aipo_env
from aipo.cli import app

RUNNER = CliRunner()


def test_envs_lists_every_registered_id():
    result = RUNNER.invoke(app, ["envs"])
    assert result.exit_code == 0
    for env_id in aipo_env.ENV_IDS:
        assert env_id in result.output


def test_scripted_demo_plays_a_solved_episode():
    result = RUNNER.invoke(app, ["demo", "--scripted", "--level", "5"])
    assert result.exit_code == 0, result.output
    assert '<feedback agent="reasoning">Step 1:' in result.output
    assert "correct True" in result.output


def test_play_reads_turns_and_prints_replies_and_reward():
    turns = '<consult agent="reasoning">first step?</consult>\nI give up: \\boxed{0}\n'
    result = RUNNER.invoke(app, ["play", "aipo/Arithmetic-v0", "-o", "level=1", "--index", "0"], input=turns)
    assert result.exit_code == 0, result.output
    assert "Step 1:" in result.output and "Episode over" in result.output


def test_play_reports_bad_ids_and_options():
    assert RUNNER.invoke(app, ["play", "aipo/Nope-v0"]).exit_code == 2
    numeric = RUNNER.invoke(app, ["play", "aipo/ConsultDecision-v0"])
    assert numeric.exit_code == 2 and "no text turns" in numeric.output
    bad = RUNNER.invoke(app, ["play", "aipo/Arithmetic-v0", "-o", "level"])
    assert bad.exit_code == 2 and "key=value" in bad.output
