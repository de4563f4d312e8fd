"""Every repository path that the code or the docs cite exists, so a reader who follows one finds it."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aipo_env", "policies", "algorithms", "aipo")
# a path from the repository root, e.g. algorithms/rollout_server.py or examples/demo.yaml; not part
# of a longer path (results/demo/aipo/x.py) and not a glob (examples/*.yaml)
CITED = re.compile(
    r"(?<![\w./-])((?:aipo_env|policies|algorithms|aipo|benchmarks|examples|docs|tests)/"
    r"[\w./-]*\w\.(?:py|ya?ml|md|jsonl|json|png))"
)


def _citing_files() -> list[Path]:
    sources = [path for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))]
    return [*sources, REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def cited_paths(text: str) -> set[str]:
    """The repository paths cited in ``text`` (docstrings, field descriptions, comments, Markdown)."""
    return set(CITED.findall(text))


def test_the_pattern_finds_citations_and_skips_globs_and_longer_paths():
    text = "See algorithms/rollout_server.py; examples/*.yaml; results/demo/aipo/x.py, `docs/a_b.md`."
    assert cited_paths(text) == {"algorithms/rollout_server.py", "docs/a_b.md"}


def test_every_cited_path_exists():
    missing = [
        f"{path.relative_to(REPO_ROOT)}: {cited}"
        for path in _citing_files()
        for cited in sorted(cited_paths(path.read_text(encoding="utf-8")))
        if not (REPO_ROOT / cited).exists()
    ]
    assert not missing, "cited paths that do not exist:\n" + "\n".join(missing)
