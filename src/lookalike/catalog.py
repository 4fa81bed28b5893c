"""The SQLite catalog: which image files are indexed, their fingerprints, and where each one's
vector lives (segment file and row). It is the index's commit point: a vector segment on disk
counts only once a committed catalog transaction refers to it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.errors import IndexFormatError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    label TEXT,
    segment INTEGER NOT NULL REFERENCES segments(id),
    row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_hash ON images(hash);
CREATE INDEX IF NOT EXISTS images_segment ON images(segment);
CREATE TABLE IF NOT EXISTS metadata (image_id INTEGER PRIMARY KEY, fields TEXT NOT NULL);
"""

#: Forward migrations: MIGRATIONS[v] brings a catalog from schema v to v + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS metadata (image_id INTEGER PRIMARY KEY, fields TEXT NOT NULL)",
    ),
}


@dataclass(frozen=True)
class ImageRecord:
    """One indexed image as the catalog knows it."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    segment: int
    row: int


@dataclass(frozen=True)
class ImageEntry:
    """An image about to be added, before its vector has a place: the file facts of its row."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None

    def at(self, segment: int, row: int) -> NewImage:
        """The catalog row of this image once its vector is at ``row`` of ``segment``."""
        return NewImage(self.path, self.size, self.mtime_ns, self.hash, self.label, segment, row)


@dataclass(frozen=True)
class NewImage:
    """An image about to be added: its file facts and where its vector was written."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    segment: int
    row: int


_COLUMNS = "id, path, size, mtime_ns, hash, label, segment, row"


class Catalog:
    """A connection to ``catalog.sqlite``. Writers wrap changes in ``transaction()``."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise IndexFormatError(f"{path}: catalog missing; the index is damaged")
        self._path = path
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        if create:
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"{self._path}: not a readable catalog ({exc})") from exc
        if row is None:
            raise IndexFormatError(f"{self._path}: catalog has no schema version; it is damaged")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise IndexFormatError(
                f"{self._path}: catalog schema {row[0]} is newer than this lookalike understands "
                f"({SCHEMA_VERSION}); upgrade lookalike"
            )
        if version < SCHEMA_VERSION:
            with self.transaction():
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        self._db.execute(statement)
                self._db.execute(
                    "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
                )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes made in the block commit together, or none do. Inside another
        transaction it is a savepoint: its changes are undone if it raises, and commit with
        the outer transaction otherwise (so a store operation composes with a caller's)."""
        if self._db.in_transaction:
            self._db.execute("SAVEPOINT nested")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK TO nested")
                self._db.execute("RELEASE nested")
                raise
            self._db.execute("RELEASE nested")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        self._db.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------------

    def generation(self) -> int:
        """A counter bumped by every commit: readers compare it to see whether to reload."""
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def get(self, image_id: int) -> ImageRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE id=?", (image_id,)).fetchone()
        return ImageRecord(*row) if row else None

    def by_path(self, path: str) -> ImageRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE path=?", (path,)).fetchone()
        return ImageRecord(*row) if row else None

    def by_ids(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM images WHERE id IN ({marks})", chunk
            ):
                found[row[0]] = ImageRecord(*row)
        return found

    def under(self, folder: str) -> dict[str, ImageRecord]:
        """Every record whose path lies inside ``folder`` (an absolute path), by path."""
        prefix = folder.rstrip("/") + "/"
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM images WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        )
        return {row[1]: ImageRecord(*row) for row in rows}

    def by_hash(self, content_hash: str) -> list[ImageRecord]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE hash=?", (content_hash,))
        return [ImageRecord(*row) for row in rows]

    def all_records(self) -> Iterator[ImageRecord]:
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM images ORDER BY id"):
            yield ImageRecord(*row)

    def locations(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(ids, segments, rows) of every indexed image, ordered by id."""
        data = self._db.execute("SELECT id, segment, row FROM images ORDER BY id").fetchall()
        table = np.array(data, dtype=np.int64).reshape(-1, 3)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    def segments(self) -> dict[int, tuple[str, int]]:
        """Segment id -> (file name, rows written)."""
        rows = self._db.execute("SELECT id, file, rows FROM segments")
        return {int(r[0]): (str(r[1]), int(r[2])) for r in rows}

    def metadata(self, ids: Sequence[int] | None = None) -> dict[int, dict[str, object]]:
        """Image id -> its metadata fields (only images that have some; all, or of ``ids``)."""
        if ids is None:
            rows = self._db.execute("SELECT image_id, fields FROM metadata").fetchall()
        else:
            rows = []
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT image_id, fields FROM metadata WHERE image_id IN ({marks})", chunk
                ).fetchall()
        return {int(i): json.loads(fields) for i, fields in rows}

    def paths(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT path FROM images ORDER BY id")]

    # -- writing (inside transaction()) --------------------------------------------------------

    def add_segment(self, file: str, rows: int) -> int:
        cursor = self._db.execute("INSERT INTO segments (file, rows) VALUES (?, ?)", (file, rows))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def drop_segments(self, segment_ids: Iterable[int]) -> None:
        self._db.executemany("DELETE FROM segments WHERE id=?", [(int(s),) for s in segment_ids])

    def insert(self, images: Sequence[NewImage]) -> list[int]:
        ids = []
        for im in images:
            cursor = self._db.execute(
                "INSERT INTO images (path, size, mtime_ns, hash, label, segment, row) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (im.path, im.size, im.mtime_ns, im.hash, im.label, im.segment, im.row),
            )
            assert cursor.lastrowid is not None
            ids.append(cursor.lastrowid)
        return ids

    def delete(self, image_ids: Iterable[int]) -> None:
        doomed = [(int(i),) for i in image_ids]
        self._db.executemany("DELETE FROM images WHERE id=?", doomed)
        self._db.executemany("DELETE FROM metadata WHERE image_id=?", doomed)

    def set_metadata(self, fields: Iterable[tuple[int, dict[str, object]]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO metadata (image_id, fields) VALUES (?, ?)",
            [(int(i), json.dumps(f, sort_keys=True)) for i, f in fields],
        )

    def move(
        self, image_id: int, *, path: str, size: int, mtime_ns: int, label: str | None
    ) -> None:
        self._db.execute(
            "UPDATE images SET path=?, size=?, mtime_ns=?, label=? WHERE id=?",
            (path, size, mtime_ns, label, image_id),
        )

    def relocate(self, moves: Iterable[tuple[int, int, int]]) -> None:
        """Point images at new vector locations: (id, segment, row) triples."""
        self._db.executemany(
            "UPDATE images SET segment=?, row=? WHERE id=?",
            [(int(s), int(r), int(i)) for i, s, r in moves],
        )
