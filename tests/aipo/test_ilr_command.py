"""``aipo ilr --quick`` runs every piece and writes a well-formed table, JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipo.cli import app


@pytest.mark.slow
def test_quick_run_writes_results_table_and_plot(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ilr", "--quick", "--idea3-warmup", "2", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["summary"]) == {"strong", "weak"}
    for conditions in results["summary"].values():
        assert set(conditions) == {"warm-up", "GRPO alone", "ILR"}
        assert all(0.0 <= stats["mean"] <= 1.0 for stats in conditions.values())
    run = results["seeds"]["0"]
    assert set(run["irt"]["abilities"]) == {"strong", "weak"}
    assert len(run["curves"]["ILR/strong"]) == results["settings"]["steps"]
    table = (tmp_path / "table.md").read_text()
    assert "| strong |" in table and "| weak |" in table and "ILR" in table
    assert (tmp_path / "ilr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "seed-0" / "ilr-strong" / "metrics.jsonl").is_file()
    assert results["settings"]["idea3_demonstrations"] == 2


def test_bad_seeds_are_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ilr", "--quick", "--seeds", "a,b", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "seeds look like" in result.output
