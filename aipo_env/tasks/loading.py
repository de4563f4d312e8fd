"""Reading benchmark rows from local files or the Hugging Face hub, with errors that say where.

Local files: JSONL (``.jsonl``), JSON (a list of objects, ``.json``), Parquet (``.parquet``) and
CSV (``.csv``). Without a local file the rows come from ``datasets.load_dataset`` on the hub.
Every malformed row is reported with the file, the row number (1-based) and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file, row and field."""


@dataclass(frozen=True)
class Row:
    """One record and where it came from."""

    data: Mapping[str, Any]
    origin: str
    number: int

    def field(self, name: str, *alternatives: str) -> Any:
        """The value of ``name`` (or the first present alternative); a clear error if missing."""
        for key in (name, *alternatives):
            value = self.data.get(key)
            if value is not None and value != "":
                return value
        wanted = " or ".join(repr(key) for key in (name, *alternatives))
        present = ", ".join(sorted(map(str, self.data))) or "none"
        raise DataError(
            f"{self.origin}, row {self.number}: missing field {wanted} (fields present: {present})"
        )

    def text(self, name: str, *alternatives: str) -> str:
        """Like :meth:`field`, converted to a stripped string."""
        return str(self.field(name, *alternatives)).strip()


def read_rows(
    data_path: str | Path | None,
    *,
    hub_name: str,
    hub_config: str | None = None,
    split: str,
    limit: int | None = None,
) -> list[Row]:
    """Rows of a local file, or of the hub dataset ``hub_name`` when ``data_path`` is ``None``.

    Raises:
        DataError: the file is missing, has an unknown suffix, or a line is not valid JSON.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of problems, got {limit}")
    rows = _local_rows(Path(data_path)) if data_path is not None else _hub_rows(hub_name, hub_config, split)
    selected = []
    for row in rows:
        if limit is not None and len(selected) >= limit:
            break
        selected.append(row)
    if not selected:
        source = data_path if data_path is not None else f"hub dataset {hub_name}"
        raise DataError(f"{source}: no rows found")
    return selected


def _local_rows(path: Path) -> Iterator[Row]:
    if not path.is_file():
        raise DataError(
            f"{path}: no such data file (pass data_path= the path of a .jsonl, .json, .parquet or .csv)"
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif suffix == ".json":
        yield from _json_rows(path)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for number, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield Row(record, str(path), number)
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for number, record in enumerate(csv.DictReader(handle), start=1):
                yield Row(record, str(path), number)
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; use .jsonl, .json, .parquet or .csv")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}, row {number}: not valid JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            if not isinstance(record, dict):
                raise DataError(f"{path}, row {number}: expected a JSON object, got {type(record).__name__}")
            yield Row(record, str(path), number)


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of objects")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}, row {number}: expected a JSON object, got {type(record).__name__}")
        yield Row(record, str(path), number)


def _hub_rows(name: str, config: str | None, split: str) -> Iterator[Row]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise DataError("loading from the hub needs the 'datasets' package; or pass data_path=") from exc
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as exc:
        raise DataError(
            f"could not load {name!r} (split {split!r}) from the Hugging Face hub: {exc}. "
            "Without network access, download the file once and pass data_path=."
        ) from exc
    origin = f"hub:{name}/{split}"
    for number, record in enumerate(dataset, start=1):
        yield Row(record, origin, number)
