"""The download cache: fetched images stored by content, and what each URL last gave.

```
CACHE_DIR/
  urls.sqlite          per URL: the SHA-256 and format of its last body, its ETag and
                       Last-Modified (for conditional requests)
  ab/abcdef....jpg     one file per distinct body: <sha256[:2]>/<sha256>.<sniffed format>
  .*.tmp               bodies being downloaded (deleted when the cache is opened again)
```

Files are written through ``lookalike.durable``; two URLs with the same bytes share one file.
With ``sync_each=False`` a stored body is renamed into place at once but flushed to disk (and
its URL recorded) only by ``flush``, many files at a time: the caller flushes before it commits
anything that names those files.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lookalike.durable import commit_file, fsync_dir, remove_temporaries, temporary_name
from lookalike.errors import IndexFormatError
from lookalike.feeds.sniffing import SNIFF_BYTES

URL_TABLE = "urls.sqlite"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    url TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    ext TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedUrl:
    """What the cache knows of one URL; ``path`` is its body's file (present on disk)."""

    url: str
    sha256: str
    path: Path
    etag: str | None
    last_modified: str | None


class DownloadCache:
    """A download cache folder (created if missing). Thread-safe."""

    def __init__(self, folder: Path, *, sync_each: bool = True) -> None:
        self.folder = Path(folder)
        self.sync_each = sync_each
        #: Files renamed into place but not yet flushed, and their URLs' rows (sync_each=False).
        self._unsynced: list[Path] = []
        self._unrecorded: dict[str, tuple[str, str, str | None, str | None, float]] = {}
        self._flushing = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.folder)
        table = self.folder / URL_TABLE
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(table, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > _SCHEMA_VERSION:
                raise IndexFormatError(
                    f"{table}: download cache format {version} is newer than this lookalike "
                    f"reads ({_SCHEMA_VERSION}); upgrade lookalike or delete {self.folder}"
                )
            with self._db:
                self._db.execute(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(
                f"{table}: the download cache's URL table cannot be read ({exc}); delete "
                f"{self.folder} and the next run downloads the images again"
            ) from exc

    def file_for(self, sha256: str, ext: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.{ext}"

    def lookup(self, url: str) -> CachedUrl | None:
        """The cache's entry for ``url``, or None when it has none or its file is gone."""
        with self._lock:
            waiting = self._unrecorded.get(url)
            row = (
                waiting[:4]
                if waiting is not None
                else self._db.execute(
                    "SELECT sha256, ext, etag, last_modified FROM urls WHERE url = ?", (url,)
                ).fetchone()
            )
        if row is None:
            return None
        path = self.file_for(row[0], row[1])
        if not path.is_file():
            return None
        return CachedUrl(url, row[0], path, row[2], row[3])

    def staging_file(self) -> Path:
        """A fresh hidden temporary name in the cache folder to stream a body into."""
        return temporary_name(self.folder / "download")

    def keep(
        self,
        url: str,
        body: bytes | Path,
        ext: str,
        *,
        sha256: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> CachedUrl:
        """Store a body under its content name, durably, and record that ``url`` gave it.
        ``body`` is the bytes, or a fully written staging file (``staging_file``; then
        ``sha256`` is its digest) which this consumes. A body already stored is not written
        again. Blocking (hashing, fsync): call it off the event loop."""
        if isinstance(body, bytes):
            sha256 = hashlib.sha256(body).hexdigest()
        elif sha256 is None:
            raise ValueError("DownloadCache.keep: a staged file needs its sha256")
        target = self.file_for(sha256, ext)
        size = len(body) if isinstance(body, bytes) else body.stat().st_size
        if _holds(target, size):
            if isinstance(body, Path):
                body.unlink(missing_ok=True)
        else:
            if not target.parent.is_dir():
                target.parent.mkdir(exist_ok=True)
                fsync_dir(self.folder)
            staged = body if isinstance(body, Path) else self.staging_file()
            try:
                if isinstance(body, bytes):
                    staged.write_bytes(body)
                if self.sync_each:
                    commit_file(staged, target)
                else:
                    staged.replace(target)
                    with self._lock:
                        self._unsynced.append(target)
            finally:
                staged.unlink(missing_ok=True)
        if self.sync_each:
            self.remember(url, sha256, ext, etag, last_modified)
        else:
            with self._lock:
                self._unrecorded[url] = (sha256, ext, etag, last_modified, time.time())
        return CachedUrl(url, sha256, target, etag, last_modified)

    def flush(self) -> None:
        """Make the files stored since the last flush durable (each file, then each folder
        once), then record their URLs in one transaction. Blocking; a no-op with nothing
        pending (and always with ``sync_each``)."""
        with self._flushing:
            with self._lock:
                files, self._unsynced = self._unsynced, []
                rows, self._unrecorded = self._unrecorded, {}
            for path in files:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for folder in {path.parent for path in files}:
                fsync_dir(folder)
            if rows:
                with self._lock, self._db:
                    self._db.executemany(_UPSERT, [(url, *row) for url, row in rows.items()])

    def remember(
        self, url: str, sha256: str, ext: str, etag: str | None, last_modified: str | None
    ) -> None:
        """Record what ``url`` gave (after its file was stored)."""
        with self._lock, self._db:
            self._db.execute(_UPSERT, (url, sha256, ext, etag, last_modified, time.time()))

    def close(self) -> None:
        """Flush what is pending, then close the URL table."""
        try:
            self.flush()
        finally:
            with self._lock:
                self._db.close()


_UPSERT = (
    "INSERT INTO urls (url, sha256, ext, etag, last_modified, fetched_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET "
    "sha256 = excluded.sha256, ext = excluded.ext, etag = excluded.etag, "
    "last_modified = excluded.last_modified, fetched_at = excluded.fetched_at"
)


def _holds(target: Path, size: int) -> bool:
    """Whether ``target`` is a stored body of ``size`` bytes. A file of another size is what
    a power cut leaves of a body renamed into place but never flushed: written again."""
    try:
        return target.stat().st_size == size
    except OSError:
        return False


class StagedFile:
    """A large body on its way into the cache (a ``staging_file``): written and hashed chunk
    by chunk, then handed to ``DownloadCache.keep`` or discarded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.head = b""
        self._file = path.open("wb")

    def write(self, chunk: bytes) -> None:
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.digest.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


__all__ = ["URL_TABLE", "CachedUrl", "DownloadCache", "StagedFile"]
