"""The README's quickstart runs as written: every ```python block marked `<!-- runnable -->`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"<!-- runnable -->\n```python\n(.*?)\n```\n", re.DOTALL)


def runnable_blocks() -> list[str]:
    return _BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_runnable_blocks():
    assert len(runnable_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_block_runs(index, tmp_path):
    """Each block in its own interpreter, from a directory outside the repo (as a user would)."""
    done = subprocess.run(
        [sys.executable, "-c", runnable_blocks()[index]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
