"""The example configs installed with the package, so that documented commands work anywhere.

``aipo/examples`` links to the repository's ``examples/`` folder and is installed with the
package (``pyproject.toml``'s package data), so a plain ``pip install "aipo[train]"`` has them too.
A config argument that names no existing file is looked up there, so every command in the
documentation runs from any directory::

    aipo train examples/aipo_arithmetic.yaml     # the file here, else the installed example
    aipo train aipo_arithmetic                   # the installed example by name
"""

from __future__ import annotations

from pathlib import Path

#: the installed examples (in a checkout, the repository's ``examples/``)
EXAMPLES = Path(__file__).with_name("examples")


def config_path(path: Path) -> Path:
    """``path`` when it exists; else the installed example it names (``NAME.yaml``, alone or under
    ``examples/``, or just ``NAME``), when there is one; else ``path`` (for the caller's own error)."""
    if path.exists():
        return path
    name = path.name if path.suffix else f"{path.name}.yaml"
    bundled = EXAMPLES / name
    if path.parent in (Path("."), Path("examples")) and bundled.is_file():
        return bundled
    return path


def existing_config(path: Path | None) -> Path | None:
    """``path`` (``None`` stays ``None``), once it is known to exist.

    Raises:
        FileNotFoundError: one line naming the file and the installed examples.
    """
    if path is None or path.exists():
        return path
    names = ", ".join(sorted(example.stem for example in EXAMPLES.glob("*.yaml")))
    raise FileNotFoundError(f"config file {path} does not exist here, nor as an installed example ({names})")
