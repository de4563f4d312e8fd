"""metrics.jsonl survives a run killed while writing it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from algorithms.run_log import RunLog, read_metrics

WHOLE = '{"step": 1, "rollout/reward": 0.25}\n{"step": 2, "rollout/reward": 0.5}\n'
TORN = '{"step": 3, "rollout/reward": 0.7'  # kill -9 in the middle of the write


def test_readers_leave_out_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(WHOLE + TORN)
    assert [record["step"] for record in read_metrics(path)] == [1, 2]


def test_a_broken_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(TORN + "\n" + WHOLE)
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 1: not valid JSON"):
        read_metrics(path)


def test_a_resumed_log_drops_the_torn_line_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "metrics.jsonl").write_text(WHOLE + TORN)
    with caplog.at_level(logging.WARNING, logger="algorithms.run_log"):
        log = RunLog(tmp_path)
    assert "dropped its torn last line" in caplog.text
    log.log(3, {"rollout/reward": 0.75})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert log.close() == tmp_path / "training.png"


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(WHOLE.rstrip("\n"))
    log = RunLog(tmp_path)
    log.log(3, {"rollout/reward": 0.75})
    assert [record["step"] for record in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
