"""The index directory on disk.

```
INDEX_DIR/
  manifest.json     format version, embedder spec and weights digest, dim, metric (written last
                    at creation: a directory without it is not an index)
  catalog.sqlite    images, fingerprints, and where each vector lives; the commit point
  segments/*.npy    immutable float32 (n, dim) vector files, written to a temporary name,
                    fsync'ed and renamed before any catalog row refers to them
  lock              held (flock) by the one process allowed to write
```

A crash at any moment leaves the last committed catalog transaction in force; segment files it
does not refer to are garbage and are deleted by the next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from lookalike.catalog import Catalog
from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import (
    IndexFormatError,
    IndexLockedError,
    InvalidInputError,
    NotAnIndexError,
)
from lookalike.vector_table import VectorTable

FORMAT_NAME = "lookalike-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
SEGMENTS = "segments"
LOCK = "lock"
ANN = "ann"
UPLOADS = "uploads"
SHARDS = "shards"
_OWN_FILES = {
    CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm", f"{CATALOG}-journal", SEGMENTS, LOCK, ANN,
    UPLOADS, SHARDS,
}  # fmt: skip

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean")


@dataclass(frozen=True)
class Manifest:
    """What an index directory says about itself."""

    embedder: EmbedderSpec
    weights_digest: str
    dim: int
    metric: Metric
    index_type: str = "auto"
    format_version: int = FORMAT_VERSION
    created: str = ""
    lookalike_version: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "embedder": self.embedder.to_json(),
            "weights_digest": self.weights_digest,
            "dim": self.dim,
            "metric": self.metric,
            "index_type": self.index_type,
            "created": self.created,
            "lookalike_version": self.lookalike_version,
        }

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexFormatError(
                f"{path}: unreadable manifest ({exc}); the index is damaged"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise NotAnIndexError(
                f"{path.parent}: not a lookalike index ({MANIFEST} does not say format "
                f"'{FORMAT_NAME}')"
            )
        version = data.get("format_version")
        if not isinstance(version, int):
            raise IndexFormatError(f"{path}: 'format_version' missing or not an integer")
        if version > FORMAT_VERSION:
            raise IndexFormatError(
                f"{path.parent}: index format {version} is newer than this lookalike reads "
                f"(up to {FORMAT_VERSION}); upgrade lookalike to open it"
            )
        try:
            metric = data["metric"]
            if metric not in METRICS:
                raise IndexFormatError(f"{path}: unknown metric {metric!r}")
            return cls(
                embedder=EmbedderSpec.from_json(data["embedder"]),
                weights_digest=str(data["weights_digest"]),
                dim=int(data["dim"]),
                metric=cast(Metric, metric),
                index_type=str(data.get("index_type", "exact")),
                format_version=version,
                created=str(data.get("created", "")),
                lookalike_version=str(data.get("lookalike_version", "")),
            )
        except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
            raise IndexFormatError(f"{path}: manifest field missing or malformed ({exc})") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    commit_file(tmp, path)


def commit_file(tmp: Path, path: Path) -> None:
    """Make a fully written temporary file durable and give it its final name, atomically
    (fsync the data, rename, fsync the folder). For files too big to hold in memory twice."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_is_index(directory: Path) -> None:
    if not directory.exists():
        raise NotAnIndexError(
            f"{directory}: no such index; create it with "
            f"`lookalike index PHOTOS --index {directory}`"
        )
    if not directory.is_dir():
        raise NotAnIndexError(f"{directory}: is a file, not an index directory")
    if not (directory / MANIFEST).is_file():
        raise NotAnIndexError(f"{directory}: not a lookalike index (no {MANIFEST})")


class IndexStore:
    """An open index directory. Writable stores hold the directory's lock until closed."""

    def __init__(self, directory: Path, manifest: Manifest, *, writable: bool) -> None:
        self.directory = directory
        self.manifest = manifest
        self.writable = writable
        self._lock: IO[bytes] | None = _take_lock(directory) if writable else None
        try:
            self.catalog = Catalog(directory / CATALOG)
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
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / MANIFEST).exists():
            raise InvalidInputError(f"{directory}: an index already exists there")
        strangers = sorted(p.name for p in directory.iterdir() if p.name not in _OWN_FILES)
        if strangers:
            raise InvalidInputError(
                f"{directory}: folder is not empty and is not an index (holds {strangers[0]!r}); "
                "choose an empty or new folder for --index"
            )
        lock = _take_lock(directory)
        try:
            # Leftovers of a creation that crashed before its manifest was written.
            for name in (CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm", f"{CATALOG}-journal"):
                (directory / name).unlink(missing_ok=True)
            (directory / SEGMENTS).mkdir(exist_ok=True)
            for stale in (directory / SEGMENTS).iterdir():
                stale.unlink()
            Catalog(directory / CATALOG, create=True).close()
            stamped = Manifest(
                embedder=manifest.embedder,
                weights_digest=manifest.weights_digest,
                dim=manifest.dim,
                metric=manifest.metric,
                index_type=manifest.index_type,
                created=manifest.created or datetime.now(UTC).isoformat(timespec="seconds"),
                lookalike_version=manifest.lookalike_version,
            )
            body = json.dumps(stamped.to_json(), indent=2).encode() + b"\n"
            write_atomic(directory / MANIFEST, body)
        finally:
            lock.close()
        return cls(directory, stamped, writable=True)

    @classmethod
    def open(cls, directory: Path, *, writable: bool = False) -> IndexStore:
        check_is_index(directory)
        return cls(directory, Manifest.read(directory / MANIFEST), writable=writable)

    def close(self) -> None:
        self.catalog.close()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- vectors ---------------------------------------------------------------------------------

    def write_segment(self, vectors: npt.NDArray[np.float32]) -> str:
        """Write vectors to a new segment file and return its name (not yet committed)."""
        self._require_writable()
        if vectors.ndim != 2 or vectors.shape[1] != self.manifest.dim:
            raise InvalidInputError(
                f"vectors must have shape (n, {self.manifest.dim}), got {vectors.shape}"
            )
        name = f"seg-{uuid.uuid4().hex}.npy"
        path = self.directory / SEGMENTS / name
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        commit_file(tmp, path)
        return name

    def load_vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, vectors) of every committed image, ordered by id."""
        for attempt in range(5):
            try:
                return self._load_vectors_once()
            except FileNotFoundError as exc:
                # A writer compacted and deleted a segment between our two reads: read again.
                if attempt == 4:
                    raise IndexFormatError(
                        f"{exc.filename}: vector segment missing; the index is damaged "
                        "(rebuild it with `lookalike index`)"
                    ) from exc
        raise AssertionError("unreachable")

    def vectors_for(self, ids: list[int]) -> npt.NDArray[np.float32]:
        """The vectors of the given image ids, in that order (ids must be indexed)."""
        return self.vector_table().take(ids)

    def vector_table(self, *, populate: bool = False) -> VectorTable:
        """Id -> vector over the committed segments, memory-mapped (``populate``: every page
        mapped at once, for many random reads)."""
        ids, segments, rows = self.catalog.locations()
        files = self.catalog.segments()
        used = np.unique(segments)  # sorted: a segment's slot is its position here
        if not len(used):
            return VectorTable.of(ids, np.empty((0, self.manifest.dim), dtype=np.float32))
        parts = [
            self._open_segment(files[int(segment)][0], populate=populate)
            for segment in used.tolist()
        ]
        return VectorTable(ids, np.searchsorted(used, segments), rows, parts)

    def set_index_type(self, index_type: str) -> None:
        """Record another index type in the manifest (the vectors do not change)."""
        self._require_writable()
        self.manifest = replace(self.manifest, index_type=index_type)
        body = json.dumps(self.manifest.to_json(), indent=2).encode() + b"\n"
        write_atomic(self.directory / MANIFEST, body)

    def _load_vectors_once(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        table = self.vector_table()
        return table.ids, table.take(table.ids)

    def _open_segment(self, name: str, *, populate: bool = False) -> npt.NDArray[np.float32]:
        """A segment's vectors, memory-mapped read-only. ``populate`` maps every page up front
        (Linux MAP_POPULATE): one bulk step instead of a page fault on each first touch, which
        is what random reads by id (re-scoring ANN candidates) would otherwise pay."""
        path = self.directory / SEGMENTS / name
        try:
            if populate and hasattr(mmap, "MAP_POPULATE"):
                data = _map_npy(path)
            else:
                data = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise IndexFormatError(f"{path}: damaged vector segment ({exc})") from exc
        if data.ndim != 2 or data.shape[1] != self.manifest.dim or data.dtype != np.float32:
            raise IndexFormatError(
                f"{path}: segment holds {data.dtype} {data.shape}, expected float32 (n, "
                f"{self.manifest.dim}); the index is damaged"
            )
        return cast(npt.NDArray[np.float32], data)

    def needs_compaction(self) -> bool:
        files = self.catalog.segments()
        written = sum(rows for _, rows in files.values())
        live = self.catalog.count()
        return len(files) > 8 or (written > 0 and live < 0.75 * written)

    def compact(self) -> None:
        """Rewrite all live vectors into one segment and delete the old files."""
        self._require_writable()
        old = self.catalog.segments()
        ids, vectors = self.load_vectors()
        with self.catalog.transaction():
            segment = self.catalog.add_segment(self.write_segment(vectors), len(ids))
            self.catalog.relocate(
                zip(ids.tolist(), [segment] * len(ids), range(len(ids)), strict=True)
            )
            self.catalog.drop_segments(old)
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Delete segment files that no committed catalog row refers to."""
        self._require_writable()
        keep = {name for name, _ in self.catalog.segments().values()}
        folder = self.directory / SEGMENTS
        if not folder.is_dir():
            raise IndexFormatError(f"{folder}: vector folder missing; the index is damaged")
        for path in folder.iterdir():
            if path.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for path in self.directory.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())

    def _require_writable(self) -> None:
        if not self.writable:
            raise InvalidInputError(f"{self.directory}: index was opened read-only")


def _take_lock(directory: Path) -> IO[bytes]:
    handle = (directory / LOCK).open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise IndexLockedError(
            f"{directory}: another lookalike process is writing this index; wait for it to "
            "finish (searching it meanwhile is fine)"
        ) from exc
    return handle


def _map_npy(path: Path) -> npt.NDArray[Any]:
    """A C-order .npy file mapped read-only with every page populated (Linux)."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran or dtype.hasobject:
            raise ValueError("not a C-order numeric array")
        offset = fh.tell()
        count = int(np.prod(shape))
        if count == 0:
            return np.empty(shape, dtype=dtype)
        mapped = mmap.mmap(
            fh.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ
        )
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
