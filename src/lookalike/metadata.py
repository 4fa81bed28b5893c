"""Metadata files: a CSV with one column naming the image file and any other columns (title,
price, url...). Numbers become numbers, so that searches can filter and sort by them."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInputError

KEY_COLUMNS = ("path", "file", "filename", "image", "name")


@dataclass(frozen=True)
class MetadataTable:
    """Rows of a metadata CSV, keyed by the absolute path of the image each row describes."""

    rows: dict[str, dict[str, object]]
    key_column: str


def read_metadata_csv(
    csv_path: Path, photos_root: Path, *, key_column: str | None = None
) -> MetadataTable:
    """Read ``csv_path``; relative file names are taken relative to ``photos_root``."""
    if not csv_path.is_file():
        raise InvalidInputError(f"{csv_path}: metadata file not found")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            key = key_column or next((c for c in columns if c.lower() in KEY_COLUMNS), None)
            if key is None or key not in columns:
                raise InvalidInputError(
                    f"{csv_path}: no column names the image file (looked for "
                    f"{key_column or ', '.join(KEY_COLUMNS)}; columns are {columns}); "
                    "pass --metadata-key COLUMN"
                )
            rows: dict[str, dict[str, object]] = {}
            for line, row in enumerate(reader, start=2):
                name = (row.get(key) or "").strip()
                if not name:
                    raise InvalidInputError(f"{csv_path}, line {line}: empty {key!r}")
                path = Path(name).expanduser()
                full = path if path.is_absolute() else photos_root / path
                fields = {c: _value(v) for c, v in row.items() if c != key and c is not None}
                rows[str(full.resolve())] = fields
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{csv_path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise InvalidInputError(f"{csv_path}: malformed CSV ({exc})") from exc
    return MetadataTable(rows, key)


def _value(text: str | None) -> object:
    if text is None:
        return None
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        return stripped
    if not math.isfinite(number):
        return stripped
    return int(number) if number.is_integer() and "." not in stripped else number
