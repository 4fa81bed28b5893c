"""The SQLite catalog: which image files are indexed, their fingerprints, and where each one's
vector lives (segment file and row). It is the index's commit point: a vector segment on disk
counts only once a committed catalog transaction refers to it."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.errors import DiskFullError, IndexFormatError, ReadOnlyIndexError

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    checksum TEXT
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
    # The checksum of each segment file, recorded at commit; NULL for segments written before
    # (unchecked: `lookalike verify` says so).
    2: ("ALTER TABLE segments ADD COLUMN checksum TEXT",),
}

#: SQLite's primary result codes that mean the catalog file itself is not what was written.
_DAMAGED_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


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


@dataclass(frozen=True)
class SegmentRecord:
    """A committed segment file: its name, the rows written to it, and its checksum (None:
    written before checksums were recorded)."""

    id: int
    file: str
    rows: int
    checksum: str | None


@dataclass(frozen=True)
class Locations:
    """Where every indexed image's vector lives, read in one snapshot of the catalog: (ids,
    segments, rows) ordered by id, the segments they name, and the generation read."""

    ids: npt.NDArray[np.int64]
    segments: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    files: dict[int, SegmentRecord]
    generation: int


_COLUMNS = "id, path, size, mtime_ns, hash, label, segment, row"


class Catalog:
    """A connection to ``catalog.sqlite``. Writers wrap changes in ``transaction()``."""

    def __init__(self, path: Path, *, create: bool = False, read_only: bool = False) -> None:
        """Open (or ``create``) the catalog. ``read_only`` connections never write: they open
        the file with ``mode=ro`` and set no pragma that writes; where the directory itself
        cannot be written (a read-only mount), no writer can exist, so SQLite is told the file
        is immutable (no locks, no -shm) unless a write-ahead log holds commits to read."""
        if not create and not path.is_file():
            raise IndexFormatError(f"{path}: catalog missing; the index is damaged")
        self._path = path
        self.read_only = read_only
        #: Checksums of segment files written but not yet registered (see ``expect_checksum``).
        self._written: dict[str, str] = {}
        with self._guard():
            if read_only:
                self._db = sqlite3.connect(
                    _read_only_uri(path), uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
                self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
        if create:
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._execute(statement)
                self._execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self._schema = SCHEMA_VERSION
        self._check_schema()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors that mean the file is damaged, the disk full or the directory
        read-only become the typed errors the CLI reports in one line."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self._path) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement and fetch every row (so damage surfaces here, as a typed error)."""
        with self._guard():
            return self._db.execute(sql, params).fetchall()

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run one INSERT and return the new row's id."""
        with self._guard():
            cursor = self._db.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._guard():
            self._db.executemany(sql, rows)

    def _check_schema(self) -> None:
        try:
            rows = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall()
        except sqlite3.DatabaseError as exc:
            translated = _translate(exc, self._path)
            if not isinstance(translated, IndexFormatError):
                raise translated from exc
            raise IndexFormatError(
                f"{self._path}: not a readable catalog ({exc}); the index is damaged: restore "
                "it from a backup, or rebuild it with `lookalike index` into a new folder"
            ) from exc
        if not rows:
            raise IndexFormatError(f"{self._path}: catalog has no schema version; it is damaged")
        version = int(rows[0][0])
        if version > SCHEMA_VERSION:
            raise IndexFormatError(
                f"{self._path}: catalog schema {version} is newer than this lookalike "
                f"understands ({SCHEMA_VERSION}); upgrade lookalike"
            )
        self._schema = version
        if version < SCHEMA_VERSION and not self.read_only:
            with self.transaction():
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        self._execute(statement)
                self._execute(
                    "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
                )
            self._schema = SCHEMA_VERSION

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes made in the block commit together, or none do. Inside another
        transaction it is a savepoint: its changes are undone if it raises, and commit with
        the outer transaction otherwise (so a store operation composes with a caller's)."""
        if self.read_only:
            raise ReadOnlyIndexError(f"{self._path}: catalog was opened read-only")
        if self._db.in_transaction:
            self._execute("SAVEPOINT nested")
            try:
                yield
            except BaseException:
                self._execute("ROLLBACK TO nested")
                self._execute("RELEASE nested")
                raise
            self._execute("RELEASE nested")
            return
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
            self._execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            self._execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with self._guard():
                    self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads made in the block see one committed state (a read transaction), even while a
        writer commits. Inside a transaction it adds nothing (that already is one state)."""
        if self._db.in_transaction:
            yield
            return
        self._execute("BEGIN")
        try:
            yield
        finally:
            if self._db.in_transaction:
                self._execute("COMMIT")

    # -- reading -------------------------------------------------------------------------------

    def generation(self) -> int:
        """A counter bumped by every commit: readers compare it to see whether to reload."""
        return int(self._execute("SELECT value FROM meta WHERE key='generation'")[0][0])

    def count(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM images")[0][0])

    def get(self, image_id: int) -> ImageRecord | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM images WHERE id=?", (image_id,))
        return ImageRecord(*rows[0]) if rows else None

    def by_path(self, path: str) -> ImageRecord | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM images WHERE path=?", (path,))
        return ImageRecord(*rows[0]) if rows else None

    def by_ids(self, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            for row in self._execute(f"SELECT {_COLUMNS} FROM images WHERE id IN ({marks})", chunk):
                found[row[0]] = ImageRecord(*row)
        return found

    def under(self, folder: str) -> dict[str, ImageRecord]:
        """Every record whose path lies inside ``folder`` (an absolute path), by path."""
        prefix = folder.rstrip("/") + "/"
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM images WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
        )
        return {row[1]: ImageRecord(*row) for row in rows}

    def by_hash(self, content_hash: str) -> list[ImageRecord]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM images WHERE hash=?", (content_hash,))
        return [ImageRecord(*row) for row in rows]

    def in_segments(self, segment_ids: Iterable[int]) -> list[ImageRecord]:
        """The records whose vectors live in the given segments, by id."""
        wanted = sorted({int(s) for s in segment_ids})
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM images WHERE segment IN ({marks}) ORDER BY id", wanted
        )
        return [ImageRecord(*row) for row in rows]

    def all_records(self) -> Iterator[ImageRecord]:
        for row in self._execute(f"SELECT {_COLUMNS} FROM images ORDER BY id"):
            yield ImageRecord(*row)

    def locations(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(ids, segments, rows) of every indexed image, ordered by id."""
        data = self._execute("SELECT id, segment, row FROM images ORDER BY id")
        table = np.array(data, dtype=np.int64).reshape(-1, 3)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    def vector_locations(self) -> Locations:
        """Image locations and the segment list in ONE read transaction: a compaction that
        commits meanwhile cannot make them disagree (a location naming a dropped segment)."""
        with self.snapshot():
            ids, segments, rows = self.locations()
            return Locations(ids, segments, rows, self.segment_records(), self.generation())

    def segments(self) -> dict[int, tuple[str, int]]:
        """Segment id -> (file name, rows written)."""
        return {s.id: (s.file, s.rows) for s in self.segment_records().values()}

    def segment_records(self) -> dict[int, SegmentRecord]:
        """Segment id -> its record (file, rows written, checksum)."""
        checksum = "checksum" if self._schema >= 3 else "NULL"
        rows = self._execute(f"SELECT id, file, rows, {checksum} FROM segments")
        return {
            int(r[0]): SegmentRecord(
                int(r[0]), str(r[1]), int(r[2]), None if r[3] is None else str(r[3])
            )
            for r in rows
        }

    def metadata(self, ids: Sequence[int] | None = None) -> dict[int, dict[str, object]]:
        """Image id -> its metadata fields (only images that have some; all, or of ``ids``)."""
        if ids is None:
            rows = self._execute("SELECT image_id, fields FROM metadata")
        else:
            rows = []
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows += self._execute(
                    f"SELECT image_id, fields FROM metadata WHERE image_id IN ({marks})", chunk
                )
        return {int(i): json.loads(fields) for i, fields in rows}

    def paths(self) -> list[str]:
        return [r[0] for r in self._execute("SELECT path FROM images ORDER BY id")]

    def integrity_problems(self) -> list[str]:
        """What SQLite's ``PRAGMA integrity_check`` finds wrong (empty: the file is sound)."""
        found = [str(r[0]) for r in self._execute("PRAGMA integrity_check")]
        return [] if found == ["ok"] else found

    # -- writing (inside transaction()) --------------------------------------------------------

    def expect_checksum(self, file: str, checksum: str) -> None:
        """Remember the checksum of a segment file just written, for ``add_segment`` to record
        when it registers that file (the writer and the registrar may be different callers)."""
        self._written[file] = checksum

    def add_segment(self, file: str, rows: int, checksum: str | None = None) -> int:
        """Register a segment file; its checksum is the one given or the one its writer told
        ``expect_checksum``."""
        recorded = checksum or self._written.pop(file, None)
        return self._insert(
            "INSERT INTO segments (file, rows, checksum) VALUES (?, ?, ?)", (file, rows, recorded)
        )

    def drop_segments(self, segment_ids: Iterable[int]) -> None:
        self._execute_many("DELETE FROM segments WHERE id=?", [(int(s),) for s in segment_ids])

    def insert(self, images: Sequence[NewImage]) -> list[int]:
        """Add rows (inside a transaction); returns their ids. Ids are never reused: a client
        that kept the id of a removed image must not get another image under it."""
        first = self._next_image_id()
        ids = list(range(first, first + len(images)))
        self._execute_many(
            "INSERT INTO images (id, path, size, mtime_ns, hash, label, segment, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i, im.path, im.size, im.mtime_ns, im.hash, im.label, im.segment, im.row)
                for i, im in zip(ids, images, strict=True)
            ],
        )
        if ids:
            self._execute(
                "INSERT INTO meta VALUES ('next_image_id', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(ids[-1] + 1),),
            )
        return ids

    def _next_image_id(self) -> int:
        """One past every id ever given (catalogs from before the counter: past the largest)."""
        (counter,) = self._execute(
            "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta "
            "WHERE key = 'next_image_id'), 1), COALESCE((SELECT MAX(id) FROM images), 0) + 1)"
        )
        return int(counter[0])

    def delete(self, image_ids: Iterable[int]) -> None:
        doomed = [(int(i),) for i in image_ids]
        self._execute_many("DELETE FROM images WHERE id=?", doomed)
        self._execute_many("DELETE FROM metadata WHERE image_id=?", doomed)

    def set_metadata(self, fields: Iterable[tuple[int, dict[str, object]]]) -> None:
        self._execute_many(
            "INSERT OR REPLACE INTO metadata (image_id, fields) VALUES (?, ?)",
            [(int(i), json.dumps(f, sort_keys=True)) for i, f in fields],
        )

    def move(
        self, image_id: int, *, path: str, size: int, mtime_ns: int, label: str | None
    ) -> None:
        self._execute(
            "UPDATE images SET path=?, size=?, mtime_ns=?, label=? WHERE id=?",
            (path, size, mtime_ns, label, image_id),
        )

    def relocate(self, moves: Iterable[tuple[int, int, int]]) -> None:
        """Point images at new vector locations: (id, segment, row) triples."""
        self._execute_many(
            "UPDATE images SET segment=?, row=? WHERE id=?",
            [(int(s), int(r), int(i)) for i, s, r in moves],
        )

    def forget_fingerprints(self, image_ids: Iterable[int]) -> None:
        """Make the next sync of these images' folders treat them as changed (re-embed them)."""
        self._execute_many(
            "UPDATE images SET size=-1, mtime_ns=-1, hash='' WHERE id=?",
            [(int(i),) for i in image_ids],
        )


def _read_only_uri(path: Path) -> str:
    """The URI that opens ``path`` without writing: ``mode=ro``, plus ``immutable=1`` where the
    directory cannot be written and no write-ahead log holds commits the file lacks."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    has_log = wal.is_file() and wal.stat().st_size > 0
    if not os.access(path.parent, os.W_OK) and not has_log:
        uri += "&immutable=1"
    return uri


def _disk_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < (1 << 20)


def _translate(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    """The typed error for an SQLite error about the catalog file (others pass unchanged)."""
    name = getattr(exc, "sqlite_errorname", "")
    # A full disk shows as SQLITE_FULL, or as an I/O error when the -shm file cannot grow.
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _disk_full(path.parent)):
        return DiskFullError(
            f"{path.parent}: disk full while writing the catalog; free space and re-run; "
            "nothing committed is lost"
        )
    if name.startswith("SQLITE_READONLY") or "readonly database" in str(exc):
        return ReadOnlyIndexError(
            f"{path.parent}: the index directory is read-only (a read-only mount or volume?); "
            "search, info and verify work there, changes need a writable copy"
        )
    if "_".join(name.split("_")[:2]) in _DAMAGED_CODES:
        return IndexFormatError(
            f"{path}: the catalog is damaged ({exc}); run `lookalike verify --index "
            f"{path.parent}`, and restore the index from a backup or rebuild it with "
            "`lookalike index` into a new folder"
        )
    return exc
