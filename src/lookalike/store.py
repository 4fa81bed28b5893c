"""The index directory on disk: its manifest, its writer's lock, and vectors committed as
segment files plus catalog rows. Which file is where is :class:`lookalike.layout.IndexLayout`'s
business (its docstring shows the whole directory); every write goes through
:mod:`lookalike.durable`.

A crash at any moment leaves the last committed catalog transaction in force; segment files it
does not refer to, and temporaries of interrupted writes, are deleted by the next writer.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.catalog import Catalog
from lookalike.catalog_records import ImageEntry, SegmentRecord
from lookalike.disk_errors import writing
from lookalike.errors import (
    DamagedSegmentError,
    IndexFormatError,
    InvalidInputError,
    NotAnIndexError,
)
from lookalike.layout import IndexLayout
from lookalike.locking import WriterLock
from lookalike.manifest import METRICS, Manifest
from lookalike.rerank_settings import RerankSettings
from lookalike.segment_files import SegmentFiles
from lookalike.vector_codec import VectorCodec
from lookalike.vector_table import VectorTable

#: ``Manifest`` and ``METRICS`` moved to :mod:`lookalike.manifest`; importable here as before.
__all__ = ["METRICS", "IndexStore", "Manifest", "check_is_index"]


def check_is_index(directory: Path) -> None:
    if not directory.exists():
        raise NotAnIndexError(
            f"{directory}: no such index; create it with "
            f"`lookalike index PHOTOS --index {directory}`"
        )
    if not directory.is_dir():
        raise NotAnIndexError(f"{directory}: is a file, not an index directory")
    layout = IndexLayout(directory)
    if not layout.is_index():
        raise NotAnIndexError(f"{directory}: not a lookalike index (no {layout.manifest.name})")


class IndexStore:
    """An open index directory. Writable stores hold the directory's lock until closed."""

    def __init__(self, directory: Path, manifest: Manifest, *, writable: bool) -> None:
        self.directory = directory
        self.layout = IndexLayout(directory)
        self.manifest = manifest
        self.writable = writable
        self._lock: WriterLock | None = _take_lock(self.layout) if writable else None
        try:
            codec = VectorCodec.load(manifest.vector_dtype, self.layout.quantiser, manifest.dim)
            #: How exact search holds vectors in memory: the segments' codec, or with
            #: keep_float32 the compact one (the segments then stay float32).
            self.search_codec = codec
            stored = VectorCodec("float32") if manifest.keep_float32 else codec
            self.segment_files = SegmentFiles(self.layout, manifest.dim, stored)
            self.catalog = Catalog(self.layout.catalog, read_only=not writable)
        except BaseException:
            self._release()
            raise
        if writable:
            try:
                self.collect_garbage()
            except BaseException:
                self.close()
                raise

    @classmethod
    def create(cls, directory: Path, manifest: Manifest) -> IndexStore:
        if directory.exists() and not directory.is_dir():
            raise InvalidInputError(f"{directory}: exists and is a file; choose another --index")
        with writing(directory):
            directory.mkdir(parents=True, exist_ok=True)
        layout = IndexLayout(directory)
        if layout.manifest.exists():
            raise InvalidInputError(f"{directory}: an index already exists there")
        strangers = sorted(p.name for p in directory.iterdir() if not layout.owns(p.name))
        if strangers:
            raise InvalidInputError(
                f"{directory}: folder is not empty and is not an index (holds {strangers[0]!r}); "
                "choose an empty or new folder for --index"
            )
        lock = _take_lock(layout)
        try:
            # Leftovers of a creation that crashed before its manifest was written.
            for path in layout.catalog_files:
                path.unlink(missing_ok=True)
            durable.remove_temporaries(directory)
            layout.segments.mkdir(exist_ok=True)
            for stale in layout.segments.iterdir():
                stale.unlink()
            Catalog(layout.catalog, create=True).close()
            layout.quantiser.unlink(missing_ok=True)
            stamped = replace(
                manifest,
                created=manifest.created or datetime.now(UTC).isoformat(timespec="seconds"),
            )
            cls._write_manifest(layout, stamped)
        finally:
            lock.close()
        return cls(directory, stamped, writable=True)

    @classmethod
    def open(cls, directory: Path, *, writable: bool = False) -> IndexStore:
        check_is_index(directory)
        return cls(directory, Manifest.read(IndexLayout(directory).manifest), writable=writable)

    def close(self) -> None:
        self.catalog.close()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @staticmethod
    def _write_manifest(layout: IndexLayout, manifest: Manifest) -> None:
        durable.write_bytes(layout.manifest, manifest.to_bytes())

    # -- vectors ---------------------------------------------------------------------------------

    def write_segment(self, vectors: npt.NDArray[np.float32]) -> str:
        """Write vectors to a new segment file and return its name (not yet committed). Its
        checksum is handed to the catalog, which records it when the segment is registered.
        Vectors that are not all finite (NaN, infinity) are refused: they would score nonsense
        against every query."""
        self._require_writable()
        if self.search_codec.needs_ranges:
            # int8: the ranges are learned from the first vectors committed, and written
            # (durably) before any segment encoded with them.
            learned = self.search_codec.learn(np.asarray(vectors, dtype=np.float32))
            with writing(self.directory):
                learned.save(self.layout.quantiser)
            self.search_codec = learned
            if not self.manifest.keep_float32:
                self.segment_files.codec = learned
        name, checksum = self.segment_files.write(vectors)
        self.catalog.expect_checksum(name, checksum)
        return name

    def append(self, vectors: npt.NDArray[np.float32], entries: Sequence[ImageEntry]) -> list[int]:
        """Commit ``vectors`` as a new segment with one catalog row per entry (row i holds
        vector i) and the entries' perceptual hashes; returns the new image ids. Inside the
        caller's catalog transaction it commits with it, and nothing of it stays if either
        raises."""
        self._require_writable()
        if len(entries) != len(vectors):
            raise InvalidInputError(f"{len(vectors)} vectors for {len(entries)} images")
        if not entries:
            return []
        with self.catalog.transaction():
            segment = self._add_segment(vectors)
            ids = self.catalog.insert([entry.at(segment, row) for row, entry in enumerate(entries)])
            self.catalog.set_perceptual_hashes(
                (entry.hash, entry.phash) for entry in entries if entry.phash is not None
            )
            return ids

    def _add_segment(self, vectors: npt.NDArray[np.float32]) -> int:
        """Write a segment file and register it in the open transaction; returns its id. The
        file is durable before the row that refers to it can commit (an unreferenced file is
        garbage the next writer deletes)."""
        return self.catalog.add_segment(self.write_segment(vectors), len(vectors))

    @property
    def codec(self) -> VectorCodec:
        """How the segments store vectors (the manifest's vector dtype)."""
        return self.segment_files.codec

    def load_vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, vectors) of every committed image, ordered by id, as float32."""
        table = self.vector_table()
        return table.ids, table.take(table.ids)

    def load_stored(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        """(ids, vectors) of every committed image, ordered by id, as stored (``codec``'s
        dtype: a compact index is read without a float32 copy)."""
        table = self.vector_table()
        return table.ids, table.take_stored(table.ids)

    def vectors_for(self, ids: list[int]) -> npt.NDArray[np.float32]:
        """The vectors of the given image ids, in that order (ids must be indexed)."""
        return self.vector_table().take(ids)

    def vector_table(self, *, populate: bool = False) -> VectorTable:
        """Id -> vector over the committed segments, memory-mapped (``populate``: every page
        mapped at once, for many random reads). Locations and segment list come from one
        catalog snapshot; a segment file a writer deleted after that snapshot (compaction)
        means a newer state exists, which is read instead."""
        if self.search_codec.needs_ranges:
            # A reader opened before an int8 index's first commit: its ranges exist now.
            layout, manifest = self.layout, self.manifest
            self.search_codec = VectorCodec.load(
                manifest.vector_dtype, layout.quantiser, manifest.dim
            )
            if not manifest.keep_float32:
                self.segment_files.codec = self.search_codec
        for attempt in range(8):
            where = self.catalog.vector_locations()
            used = np.unique(where.segments)  # sorted: a segment's slot is its position here
            if not len(used):
                empty = np.empty((0, self.manifest.dim), dtype=self.codec.storage)
                return VectorTable(where.ids, where.ids, where.ids, [empty], self.codec.decode)
            try:
                missing = [int(s) for s in used.tolist() if int(s) not in where.files]
                if missing:
                    raise IndexFormatError(
                        f"{self.layout.catalog}: images refer to segment ids {missing[:5]} "
                        "that the catalog does not list; the index is damaged (run "
                        f"`lookalike verify --index {self.directory} --repair`)"
                    )
                parts = [
                    self.segment_files.open(where.files[int(s)], populate=populate)
                    for s in used.tolist()
                ]
            except DamagedSegmentError as exc:
                moved = self.catalog.generation(fresh=True) != where.generation
                if attempt < 7 and exc.missing and moved:
                    continue
                raise
            return VectorTable(
                where.ids,
                np.searchsorted(used, where.segments),
                where.rows,
                parts,
                self.codec.decode,
            )
        raise AssertionError("unreachable")

    def set_index_type(self, index_type: str) -> None:
        """Record another index type in the manifest (the vectors do not change)."""
        self._require_writable()
        self.manifest = replace(self.manifest, index_type=index_type)
        self._write_manifest(self.layout, self.manifest)

    def set_reranking(self, settings: RerankSettings) -> None:
        """Record other query re-ranking settings in the manifest."""
        self._require_writable()
        self.manifest = replace(self.manifest, reranking=settings)
        self._write_manifest(self.layout, self.manifest)

    def damaged_segments(self, *, contents: bool = True) -> dict[int, str]:
        """Segment id -> what is wrong with its file (missing, unreadable, wrong shape, rows
        or checksum), for every committed segment whose file cannot be trusted.
        ``contents=False`` skips the checksums (reading every vector): what each indexing run
        checks, so that a run over a big index stays incremental; `verify` reads everything."""
        found: dict[int, str] = {}
        for segment in self.catalog.segment_records().values():
            problem = self.segment_files.problem(segment, contents=contents)
            if problem:
                found[segment.id] = problem
        return found

    def segment_file_problem(self, segment: SegmentRecord) -> str | None:
        """What is wrong with a committed segment's file, or None when it is sound."""
        return self.segment_files.problem(segment)

    def release_segments(self, segment_ids: set[int]) -> set[int]:
        """Drop the given segments from the catalog where no image refers to them any more
        (their files go with the next garbage collection); returns those still referred to."""
        self._require_writable()
        if not segment_ids:
            return set()
        used = {r.segment for r in self.catalog.in_segments(segment_ids)}
        if segment_ids - used:
            with self.catalog.transaction():
                self.catalog.drop_segments(segment_ids - used)
            self.collect_garbage()
        return used

    def needs_compaction(self) -> bool:
        files = self.catalog.segments()
        written = sum(rows for _, rows in files.values())
        live = self.catalog.count()
        return len(files) > 8 or (written > 0 and live < 0.75 * written)

    def compact(self) -> None:
        """Rewrite all live vectors into one segment and delete the old files. Compact vectors
        are copied as stored (no decoding: int8 codes keep their ranges)."""
        self._require_writable()
        old = self.catalog.segments()
        ids, stored = self.load_stored()
        with self.catalog.transaction():
            name, checksum = self.segment_files.write_stored(stored)
            self.catalog.expect_checksum(name, checksum)
            segment = self.catalog.add_segment(name, len(stored))
            self.catalog.relocate(
                zip(ids.tolist(), [segment] * len(ids), range(len(ids)), strict=True)
            )
            self.catalog.drop_segments(old)
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Delete what no committed state refers to: segment files outside the catalog, the
        temporaries of interrupted writes (uploads/'s too: a server killed while writing an
        upload), and the shards of interrupted Ray runs."""
        self._require_writable()
        keep = {name for name, _ in self.catalog.segments().values()}
        folder = self.layout.segments
        if not folder.is_dir():
            raise IndexFormatError(f"{folder}: vector folder missing; the index is damaged")
        durable.remove_temporaries(folder)
        for path in folder.iterdir():
            if path.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        durable.remove_temporaries(self.layout.directory)
        durable.remove_temporaries(self.layout.graph)
        durable.remove_temporaries(self.layout.uploads)
        # Only the writer (this process, holding the lock) runs Ray jobs for this index, and it
        # deletes a run's shards when the run ends: any found now belong to a killed run.
        shutil.rmtree(self.layout.shards, ignore_errors=True)

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())

    def _require_writable(self) -> None:
        if not self.writable:
            raise InvalidInputError(f"{self.directory}: index was opened read-only")


def _take_lock(layout: IndexLayout) -> WriterLock:
    # Held by this process alone: forked children never share it (see lookalike.locking), so
    # it goes with this process however the process ends.
    with writing(layout.directory):
        return WriterLock(layout.lock)
