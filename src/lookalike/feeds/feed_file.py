"""Reading a product feed: a CSV, JSON Lines (or Parquet) file with one product per row, a
column naming the product and a column holding its image(s): one URL, a local path, or a list
(a JSON array in a CSV cell, a list in JSON Lines). Every other column is the product's
metadata; numbers become numbers, so searches filter and sort by them."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInputError
from lookalike.metadata import _value as csv_value

FEED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
ID_COLUMNS = ("id", "product_id", "productid", "sku", "item_id", "itemid", "product", "gtin")
IMAGE_COLUMNS = (
    "image",
    "image_url",
    "images",
    "image_link",
    "image_urls",
    "image_links",
    "imageurl",
    "picture",
    "photo",
    "img",
)
#: The metadata field holding the URL (or path) an image came from.
URL_FIELD = "image_url"


@dataclass(frozen=True)
class FeedRow:
    """One product: its id (always text), its image URLs or paths in feed order (local paths
    made absolute), the other columns, and the line (CSV, JSON Lines) or row it came from."""

    id: str
    images: tuple[str, ...]
    fields: dict[str, object]
    line: int


@dataclass(frozen=True)
class Feed:
    """A feed read whole: its rows in order, and which columns name products and images."""

    path: Path
    id_column: str
    image_column: str
    rows: tuple[FeedRow, ...]


def is_feed(path: Path) -> bool:
    """Whether ``path`` names a feed file (by its suffix) rather than a folder of images."""
    return path.suffix.lower() in FEED_SUFFIXES and not path.is_dir()


def read_feed(path: Path, *, image_column: str | None = None, id_column: str | None = None) -> Feed:
    """Read a feed file; the id and image columns are found by name when not given."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: feed file not found; pass a .csv, .jsonl or .parquet")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            columns, records = _csv_records(path)
        elif suffix in (".jsonl", ".ndjson"):
            columns, records = _jsonl_records(path)
        elif suffix == ".parquet":
            columns, records = _parquet_records(path)
        else:
            raise InvalidInputError(
                f"{path}: not a feed ({', '.join(FEED_SUFFIXES)} files are read)"
            )
        ids = _column(path, columns, id_column, ID_COLUMNS, "id", "--id-column")
        images = _column(path, columns, image_column, IMAGE_COLUMNS, "image", "--image-column")
        if ids == images:
            raise InvalidInputError(f"{path}: the id and image columns are both {ids!r}")
        rows = tuple(_rows(path, records, ids, images, suffix == ".csv"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise InvalidInputError(f"{path}: malformed CSV ({exc})") from exc
    return Feed(path, ids, images, rows)


Record = tuple[int, dict[str, object]]


def _csv_records(path: Path) -> tuple[list[str], Iterator[Record]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c for c in reader.fieldnames or [] if c]
        records = [(line, dict(row)) for line, row in enumerate(reader, start=2)]
    return columns, iter(records)


def _jsonl_records(path: Path) -> tuple[list[str], Iterator[Record]]:
    records: list[Record] = []
    columns: dict[str, None] = {}
    with path.open(encoding="utf-8-sig") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(
                    f"{path}, line {line}: not JSON ({exc.msg}); each line must be one object"
                ) from exc
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f"{path}, line {line}: a JSON {type(row).__name__}, expected an object"
                )
            columns.update(dict.fromkeys(row))
            records.append((line, row))
    return list(columns), iter(records)


def _parquet_records(path: Path) -> tuple[list[str], Iterator[Record]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise InvalidInputError(
            f"{path}: reading Parquet feeds needs pyarrow: pip install pyarrow "
            "(or write the feed as CSV or JSON Lines)"
        ) from None
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: unreadable Parquet file ({exc})") from exc
    rows = table.to_pylist()
    return list(table.column_names), iter(enumerate(rows, start=1))


def _column(
    path: Path,
    columns: list[str],
    given: str | None,
    candidates: tuple[str, ...],
    role: str,
    option: str,
) -> str:
    if given is not None:
        if given not in columns:
            raise InvalidInputError(
                f"{path}: no column {given!r} (columns are {columns}); pass {option} with one "
                "of them"
            )
        return given
    by_name = {c.lower(): c for c in columns}
    found = next((by_name[c] for c in candidates if c in by_name), None)
    if found is None:
        raise InvalidInputError(
            f"{path}: no {role} column found (looked for {', '.join(candidates)}; columns are "
            f"{columns}); pass {option} COLUMN"
        )
    return found


def _rows(
    path: Path, records: Iterator[Record], ids: str, images: str, from_csv: bool
) -> Iterator[FeedRow]:
    seen: dict[str, int] = {}
    for line, record in records:
        raw_id = record.get(ids)
        product = _text(raw_id)
        if not product:
            raise InvalidInputError(f"{path}, line {line}: empty {ids!r}; every row needs an id")
        if product in seen:
            raise InvalidInputError(
                f"{path}, line {line}: id {product!r} already used on line {seen[product]}; "
                "ids must be unique"
            )
        seen[product] = line
        cell = record.get(images)
        urls = _image_list(path, line, images, cell, from_csv)
        fields: dict[str, object] = {}
        for column, value in record.items():
            if column in (ids, images) or not column:
                continue
            fields[column] = (
                csv_value(value) if from_csv and isinstance(value, str) else _json(value)
            )
        fields[ids] = product
        yield FeedRow(product, tuple(_locate(path, u) for u in urls), fields, line)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _image_list(path: Path, line: int, column: str, cell: object, from_csv: bool) -> list[str]:
    if isinstance(cell, str) and from_csv and cell.strip().startswith("["):
        try:
            cell = json.loads(cell)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{path}, line {line}: {column!r} starts with '[' but is not a JSON array "
                f'({exc.msg}); write the list as ["url1", "url2"]'
            ) from exc
    if cell is None:
        return []
    if isinstance(cell, str):
        return [cell.strip()] if cell.strip() else []
    if isinstance(cell, list):
        urls = [str(u).strip() for u in cell if u is not None and str(u).strip()]
        return list(dict.fromkeys(urls))  # the same URL twice is one image
    raise InvalidInputError(
        f"{path}, line {line}: {column!r} holds a {type(cell).__name__}; expected a URL, a "
        "path or a list of them"
    )


def _locate(feed: Path, url: str) -> str:
    """URLs as written; a relative local path is taken relative to the feed's folder."""
    if "://" in url or ":" in url.split("/", 1)[0]:
        return url
    local = Path(url).expanduser()
    return str(local if local.is_absolute() else (feed.parent / local).resolve())


def _json(value: object) -> object:
    """A JSON Lines or Parquet value as metadata: scalars kept, anything nested as JSON text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return json.dumps(value, sort_keys=True, default=str)


__all__ = ["FEED_SUFFIXES", "URL_FIELD", "Feed", "FeedRow", "is_feed", "read_feed"]
