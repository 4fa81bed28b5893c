"""The download cache: fetched images stored by content, and what each URL last gave.

```
CACHE_DIR/
  urls.sqlite          per URL: the SHA-256 and format of its last body, its ETag and
                       Last-Modified (for conditional requests)
  ab/abcdef....jpg     one file per distinct body: <sha256[:2]>/<sha256>.<sniffed format>
                       (the 256 folders are made with the cache)
  .*.tmp, ab/.*.tmp    bodies being downloaded or stored (deleted when the cache is opened
                       again)
```

Files are written through ``lookalike.durable``; two URLs with the same bytes share one file.
With ``sync_each=False`` a stored body is renamed into place at once and flushed to disk by a
background thread while the caller goes on (decoding, embedding); its URL is recorded only by
``flush``, which returns once every file stored before it is durable: the caller flushes before
it commits anything that names those files, and rarely waits there.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lookalike.durable import (
    commit_file,
    fsync_dir,
    fsync_path,
    remove_temporaries,
    temporary_name,
)
from lookalike.errors import IndexFormatError
from lookalike.feeds.background import background
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
        #: Folders of files renamed into place since the last flush, and their URLs' rows,
        #: recorded by the next flush (sync_each=False); the files sync in the background.
        self._unsynced: set[Path] = set()
        self._syncer = _Syncer()
        self._unrecorded: dict[str, tuple[str, str, str | None, str | None, float]] = {}
        self._flushing = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_temporaries(self.folder)
        if not (self.folder / _FAN_OUT[-1]).is_dir():  # made once, not one by one
            for name in _FAN_OUT:
                (self.folder / name).mkdir(exist_ok=True)
            fsync_dir(self.folder)
        for name in _FAN_OUT:
            remove_temporaries(self.folder / name)
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
            if not target.parent.is_dir():  # removed by hand since the cache was opened
                target.parent.mkdir(exist_ok=True)
                fsync_dir(self.folder)
            # bytes are staged beside their target: the rename stays within one folder
            staged = body if isinstance(body, Path) else temporary_name(target)
            try:
                if isinstance(body, bytes):
                    with staged.open("xb") as fh:
                        fh.write(body)
                if self.sync_each:
                    commit_file(staged, target)
                else:
                    staged.replace(target)
                    with self._lock:
                        self._unsynced.add(target.parent)
                    self._syncer.submit(target)
            finally:
                staged.unlink(missing_ok=True)
        if self.sync_each:
            self.remember(url, sha256, ext, etag, last_modified)
        else:
            with self._lock:
                self._unrecorded[url] = (sha256, ext, etag, last_modified, time.time())
        return CachedUrl(url, sha256, target, etag, last_modified)

    def flush(self) -> None:
        """Make the files stored since the last flush durable (waiting for the background
        syncing of each file, then each folder once), then record their URLs in one
        transaction. Blocking; a no-op with nothing pending (and always with ``sync_each``).
        Raises the OSError that syncing a file met (a full or failing disk)."""
        with self._flushing:
            with self._lock:
                folders, self._unsynced = self._unsynced, set()
                rows, self._unrecorded = self._unrecorded, {}
            self._syncer.wait()
            for folder in folders:
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
            self._syncer.stop()
            with self._lock:
                self._db.close()


#: The cache's fan-out folders, one per first byte of the content hash.
_FAN_OUT = tuple(f"{i:02x}" for i in range(256))

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


class _Syncer:
    """A thread that fsyncs stored files one by one as they come, so that a flush finds them
    durable already (fsync waits for the disk, which costs the machine's cores nothing).
    Started with the first file; ``wait`` returns when every file submitted before it is
    synced, and raises the first error met since the last wait."""

    def __init__(self) -> None:
        self._files: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._submitted = self._synced = 0
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def submit(self, path: Path) -> None:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lookalike-fsync", daemon=True
                )
                self._thread.start()
            self._submitted += 1
        self._files.put(path)

    def wait(self) -> None:
        with self._changed:
            target = self._submitted
            self._changed.wait_for(lambda: self._synced >= target)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        with self._changed:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._files.put(None)
            thread.join()

    def _run(self) -> None:
        background()
        while (path := self._files.get()) is not None:
            error: OSError | None = None
            try:
                fsync_path(path)
            except FileNotFoundError:
                pass  # replaced or removed since: nothing of it to make durable
            except OSError as exc:
                error = exc
            with self._changed:
                self._synced += 1
                if error is not None and self._error is None:
                    self._error = error
                self._changed.notify_all()


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
