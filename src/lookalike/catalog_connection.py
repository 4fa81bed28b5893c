"""The catalog connection: one SQLite connection to ``catalog.sqlite``, opened for writing (WAL,
full sync) or read-only (without writing a byte), with SQLite's errors about the file turned
into lookalike's typed errors, explicit transactions that nest as savepoints, and snapshots."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lookalike.errors import DiskFullError, IndexFormatError, ReadOnlyIndexError

#: SQLite's primary result codes that mean the catalog file itself is not what was written.
_DAMAGED_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


class CatalogConnection:
    """An open SQLite connection to a catalog file; every statement runs through ``execute``
    (or its siblings) so that damage, a full disk or a read-only directory surface as typed
    errors."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        """Open the file. ``read_only`` connections never write: they open the file with
        ``mode=ro`` and set no pragma that writes; where the directory itself cannot be
        written (a read-only mount), no writer can exist, so SQLite is told the file is
        immutable (no locks, no -shm) unless a write-ahead log holds commits to read."""
        self.path = path
        self.read_only = read_only
        with self._guard():
            if read_only:
                self._sqlite = sqlite3.connect(
                    _read_only_uri(path), uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
                self._sqlite = sqlite3.connect(
                    str(path), isolation_level=None, check_same_thread=False
                )
                self._sqlite.execute("PRAGMA journal_mode=WAL")
                self._sqlite.execute("PRAGMA synchronous=FULL")
            self._sqlite.execute("PRAGMA busy_timeout=30000")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors that mean the file is damaged, the disk full or the directory
        read-only become the typed errors the CLI reports in one line."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise translate(exc, self.path) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement and fetch every row (so damage surfaces here, as a typed error)."""
        with self._guard():
            return self._sqlite.execute(sql, params).fetchall()

    def execute_untranslated(self, sql: str) -> list[Any]:
        """Run one statement and fetch every row, letting SQLite's own errors through (for a
        caller that words them itself)."""
        return self._sqlite.execute(sql).fetchall()

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run one INSERT and return the new row's id."""
        with self._guard():
            cursor = self._sqlite.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._guard():
            self._sqlite.executemany(sql, rows)

    def close(self) -> None:
        self._sqlite.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes made in the block commit together, or none do. Inside another
        transaction it is a savepoint: its changes are undone if it raises, and commit with
        the outer transaction otherwise (so a store operation composes with a caller's)."""
        if self.read_only:
            raise ReadOnlyIndexError(f"{self.path}: catalog was opened read-only")
        if self._sqlite.in_transaction:
            self.execute("SAVEPOINT nested")
            try:
                yield
            except BaseException:
                self.execute("ROLLBACK TO nested")
                self.execute("RELEASE nested")
                raise
            self.execute("RELEASE nested")
            return
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            self.execute("COMMIT")
        except BaseException:
            if self._sqlite.in_transaction:
                with self._guard():
                    self._sqlite.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads made in the block see one committed state (a read transaction), even while a
        writer commits. Inside a transaction it adds nothing (that already is one state)."""
        if self._sqlite.in_transaction:
            yield
            return
        self.execute("BEGIN")
        try:
            yield
        finally:
            if self._sqlite.in_transaction:
                self.execute("COMMIT")


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


def translate(exc: sqlite3.DatabaseError, path: Path) -> Exception:
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
