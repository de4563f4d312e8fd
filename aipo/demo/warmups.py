"""Retrain a shipped warm-up (see :mod:`policies.shipped`) exactly as it was made.

    python -m aipo.demo.warmups arithmetic          # about 8 CPU-minutes

It runs the demo's supervised warm-up (``examples/demo.yaml``'s ``warmup`` section, seed 0) and
writes the model, with its provenance (``warmup.yaml``) and checksums, into
``policies/warmups/NAME/``. Runs are deterministic on one machine and library version; on
another, the weights may differ in their last bits, and the checksums are rewritten to match.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from aipo.bundled import EXAMPLES
from aipo.demo.config import load_demo_config
from aipo.demo.run import warm_up
from aipo_env.pretrained import write_checksums
from policies.shipped import WARMUPS_DIR

#: name -> (demo config it takes its warm-up section from, seed, the hard level it leaves out)
RECIPES = {"arithmetic": (EXAMPLES / "demo.yaml", 0, 3)}


def build(name: str, destination: Path | None = None) -> Path:
    """Train the warm-up ``name`` and save it (by default into the package's warm-up folder)."""
    config_path, seed, hard_level = RECIPES[name]
    config = load_demo_config(config_path)
    target = destination or WARMUPS_DIR / name
    with tempfile.TemporaryDirectory() as scratch:
        warm_up(config, seed, Path(scratch), hard_level=hard_level)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(scratch, target)
    write_checksums(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retrain a shipped warm-up model.")
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=None, help="write here instead of policies/warmups/NAME")
    args = parser.parse_args(argv)
    print(f"wrote {build(args.name, args.out)}")


if __name__ == "__main__":
    main()
