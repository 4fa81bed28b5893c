"""The SQLite catalog: which image files are indexed, their fingerprints, and where each one's
vector lives (segment file and row). It is the index's commit point: a vector segment on disk
counts only once a committed catalog transaction refers to it.

The connection (opening, typed errors, transactions) is :mod:`lookalike.catalog_connection`'s,
the tables and their migrations :mod:`lookalike.catalog_schema`'s, the row types
:mod:`lookalike.catalog_records`'; this module is the queries."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike import catalog_schema
from lookalike.catalog_connection import CatalogConnection
from lookalike.catalog_records import (
    ImageEntry,
    ImageRecord,
    Locations,
    NewImage,
    SegmentRecord,
)
from lookalike.catalog_schema import SCHEMA_VERSION
from lookalike.errors import IndexFormatError

#: The record types and SCHEMA_VERSION moved to their own modules; importable here as before.
__all__ = [
    "PRODUCT_FIELD_SETTING",
    "SCHEMA_VERSION",
    "Catalog",
    "ImageEntry",
    "ImageRecord",
    "Locations",
    "NewImage",
    "SegmentRecord",
]

#: The setting naming the metadata field that holds each image's product id, in an index made
#: from a product feed (see ``lookalike.feeds``).
PRODUCT_FIELD_SETTING = "product_field"

_COLUMNS = "id, path, size, mtime_ns, hash, label, segment, row"


class Catalog:
    """A connection to ``catalog.sqlite``. Writers wrap changes in ``transaction()``."""

    def __init__(self, path: Path, *, create: bool = False, read_only: bool = False) -> None:
        """Open (or ``create``) the catalog; ``read_only`` catalogs never write (see
        :class:`lookalike.catalog_connection.CatalogConnection`). A writer brings an older
        schema up to date."""
        if not create and not path.is_file():
            raise IndexFormatError(f"{path}: catalog missing; the index is damaged")
        self.read_only = read_only
        #: Checksums of segment files written but not yet registered (see ``expect_checksum``).
        self._written: dict[str, str] = {}
        self._pinned = threading.local()
        self._db = CatalogConnection(path, read_only=read_only)
        if create:
            catalog_schema.create(self._db)
        self._schema = catalog_schema.check(self._db)

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> AbstractContextManager[None]:
        """All changes made in the block commit together, or none do. Inside another
        transaction it is a savepoint: its changes are undone if it raises, and commit with
        the outer transaction otherwise (so a store operation composes with a caller's)."""
        return self._db.transaction()

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads made in the block see one committed state (a read transaction), even while a
        writer commits. Inside a transaction it adds nothing (that already is one state)."""
        return self._db.snapshot()

    # -- reading -------------------------------------------------------------------------------

    def generation(self, *, fresh: bool = False) -> int:
        """A counter bumped by every commit: readers compare it to see whether to reload.
        Inside this thread's ``pinned()`` block, the value read when the block began (unless
        ``fresh``)."""
        pinned: int | None = getattr(self._pinned, "generation", None)
        if pinned is not None and not fresh:
            return pinned
        return int(self._db.execute("SELECT value FROM meta WHERE key='generation'")[0][0])

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """A block in which ``generation()`` is read once, for this thread: the parts of one
        search (snapshot, graph, counts) agree on one state of the catalog and ask SQLite
        once, not each. A commit made meanwhile is seen by the next block."""
        if getattr(self._pinned, "generation", None) is not None:  # nested: the outer one
            yield
            return
        self._pinned.generation = self.generation()
        try:
            yield
        finally:
            self._pinned.generation = None

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM images")[0][0])

    def get(self, image_id: int) -> ImageRecord | None:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE id=?", (image_id,))
        return ImageRecord(*rows[0]) if rows else None

    def by_path(self, path: str) -> ImageRecord | None:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE path=?", (path,))
        return ImageRecord(*rows[0]) if rows else None

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

    def found(
        self, ids: Sequence[int]
    ) -> tuple[dict[int, ImageRecord], dict[int, dict[str, object]]]:
        """Records and metadata of ``ids`` in one query (a search's results: one SQLite round
        trip per batch instead of two)."""
        records: dict[int, ImageRecord] = {}
        metadata: dict[int, dict[str, object]] = {}
        columns = ", ".join(f"images.{name}" for name in _COLUMNS.split(", "))
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            for *row, fields in self._db.execute(
                f"SELECT {columns}, metadata.fields FROM images LEFT JOIN metadata "
                f"ON metadata.image_id = images.id WHERE images.id IN ({marks})",
                chunk,
            ):
                records[row[0]] = ImageRecord(*row)
                if fields is not None:
                    metadata[row[0]] = json.loads(fields)
        return records, metadata

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

    def in_segments(self, segment_ids: Iterable[int]) -> list[ImageRecord]:
        """The records whose vectors live in the given segments, by id."""
        wanted = sorted({int(s) for s in segment_ids})
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM images WHERE segment IN ({marks}) ORDER BY id", wanted
        )
        return [ImageRecord(*row) for row in rows]

    def all_records(self) -> Iterator[ImageRecord]:
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM images ORDER BY id"):
            yield ImageRecord(*row)

    def locations(
        self,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(ids, segments, rows) of every indexed image, ordered by id."""
        data = self._db.execute("SELECT id, segment, row FROM images ORDER BY id")
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
        rows = self._db.execute(f"SELECT id, file, rows, {checksum} FROM segments")
        return {
            int(r[0]): SegmentRecord(
                int(r[0]), str(r[1]), int(r[2]), None if r[3] is None else str(r[3])
            )
            for r in rows
        }

    def metadata(self, ids: Sequence[int] | None = None) -> dict[int, dict[str, object]]:
        """Image id -> its metadata fields (only images that have some; all, or of ``ids``)."""
        if ids is None:
            rows = self._db.execute("SELECT image_id, fields FROM metadata")
        else:
            rows = []
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT image_id, fields FROM metadata WHERE image_id IN ({marks})", chunk
                )
        return {int(i): json.loads(fields) for i, fields in rows}

    def setting(self, name: str) -> str | None:
        """A value recorded with ``set_setting`` (None: never set)."""
        rows = self._db.execute("SELECT value FROM meta WHERE key=?", (f"setting.{name}",))
        return str(rows[0][0]) if rows else None

    def product_ids(self, field: str, product: str) -> list[int]:
        """Ids of the images whose metadata ``field`` is ``product``, by id."""
        rows = self._db.execute(
            "SELECT image_id FROM metadata WHERE json_extract(fields, ?) = ? ORDER BY image_id",
            (f'$."{field}"', product),
        )
        return [int(r[0]) for r in rows]

    def paths(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT path FROM images ORDER BY id")]

    def not_duplicates(self) -> set[tuple[str, str]]:
        """The pairs of contents (hash_a < hash_b) a user said are not duplicates (an older
        catalog opened read-only has no such table: none)."""
        if self._schema < 4:
            return set()
        rows = self._db.execute("SELECT hash_a, hash_b FROM not_duplicates")
        return {(str(a), str(b)) for a, b in rows}

    def integrity_problems(self) -> list[str]:
        """What SQLite's ``PRAGMA integrity_check`` finds wrong (empty: the file is sound)."""
        found = [str(r[0]) for r in self._db.execute("PRAGMA integrity_check")]
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
        return self._db.insert(
            "INSERT INTO segments (file, rows, checksum) VALUES (?, ?, ?)", (file, rows, recorded)
        )

    def drop_segments(self, segment_ids: Iterable[int]) -> None:
        self._db.execute_many("DELETE FROM segments WHERE id=?", [(int(s),) for s in segment_ids])

    def insert(self, images: Sequence[NewImage]) -> list[int]:
        """Add rows (inside a transaction); returns their ids. Ids are never reused: a client
        that kept the id of a removed image must not get another image under it."""
        first = self._next_image_id()
        ids = list(range(first, first + len(images)))
        self._db.execute_many(
            "INSERT INTO images (id, path, size, mtime_ns, hash, label, segment, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i, im.path, im.size, im.mtime_ns, im.hash, im.label, im.segment, im.row)
                for i, im in zip(ids, images, strict=True)
            ],
        )
        if ids:
            self._db.execute(
                "INSERT INTO meta VALUES ('next_image_id', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(ids[-1] + 1),),
            )
        return ids

    def _next_image_id(self) -> int:
        """One past every id ever given (catalogs from before the counter: past the largest)."""
        (counter,) = self._db.execute(
            "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta "
            "WHERE key = 'next_image_id'), 1), COALESCE((SELECT MAX(id) FROM images), 0) + 1)"
        )
        return int(counter[0])

    def delete(self, image_ids: Iterable[int]) -> None:
        doomed = [(int(i),) for i in image_ids]
        self._db.execute_many("DELETE FROM images WHERE id=?", doomed)
        self._db.execute_many("DELETE FROM metadata WHERE image_id=?", doomed)

    def set_setting(self, name: str, value: str) -> None:
        """Record a setting of the index (e.g. the metadata field naming a feed's products)."""
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (f"setting.{name}", value),
        )

    def add_not_duplicate(self, hash_a: str, hash_b: str, created: str) -> bool:
        """Record that two contents are not duplicates (``hash_a < hash_b``); whether the pair
        is new."""
        if not hash_a < hash_b:
            raise ValueError(f"not-duplicate pairs are stored hash_a < hash_b: {hash_a}, {hash_b}")
        before = len(
            self._db.execute(
                "SELECT 1 FROM not_duplicates WHERE hash_a=? AND hash_b=?", (hash_a, hash_b)
            )
        )
        self._db.execute(
            "INSERT OR IGNORE INTO not_duplicates (hash_a, hash_b, created) VALUES (?, ?, ?)",
            (hash_a, hash_b, created),
        )
        return before == 0

    def set_metadata(self, fields: Iterable[tuple[int, dict[str, object]]]) -> None:
        self._db.execute_many(
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

    def refingerprint(self, image_id: int, *, size: int, mtime_ns: int, content_hash: str) -> None:
        """Record new file facts for an image whose bytes changed in place (a duplicate replaced
        by a hard link to the file kept, or put back); its vector stays."""
        self._db.execute(
            "UPDATE images SET size=?, mtime_ns=?, hash=? WHERE id=?",
            (size, mtime_ns, content_hash, image_id),
        )

    def relocate(self, moves: Iterable[tuple[int, int, int]]) -> None:
        """Point images at new vector locations: (id, segment, row) triples."""
        self._db.execute_many(
            "UPDATE images SET segment=?, row=? WHERE id=?",
            [(int(s), int(r), int(i)) for i, s, r in moves],
        )

    # Perceptual hashes (duplicates/perceptual.py), keyed by content hash. An older catalog
    # opened read-only has no table for them (schema < 4): it reads as empty.

    def perceptual_hashes(self, content_hashes: Iterable[str]) -> dict[str, int]:
        """Content hash -> stored perceptual hash, for those of ``content_hashes`` known."""
        wanted = sorted(set(content_hashes))
        if self._schema < 4 or not wanted:
            return {}
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, value in self._db.execute(
                f"SELECT hash, phash FROM perceptual_hashes WHERE hash IN ({marks})", chunk
            ):
                found[digest] = int(value)
        return found

    def set_perceptual_hashes(self, hashes: Iterable[tuple[str, int]]) -> None:
        """Record (content hash, perceptual hash) pairs (inside a transaction)."""
        self._db.execute_many(
            "INSERT OR REPLACE INTO perceptual_hashes (hash, phash) VALUES (?, ?)",
            [(digest, int(value)) for digest, value in hashes if digest],
        )
