"""The neighbour statistic an index directory keeps (``IndexLayout.neighbours``), in step with
its catalog.

The file records the ids it covers, so it is tied to the catalog's state without a separate
stamp: image ids are never reused (a changed file gets a new id), so a table whose ids are
the catalog's ids is the table of the catalog's vectors. Writers call :meth:`sync` after each
commit when the index's queries use the hubness correction: the table is updated incrementally
and written through :mod:`lookalike.durable`, so a kill -9 at any moment leaves the old file or
the new one. Readers call :meth:`current`, which updates a stale table (a writer killed between
its commit and the file) in memory, and builds a missing or damaged one (up to
``BUILD_WHILE_SEARCHING`` images; beyond, the search is refused with the fix): never silently
wrong, only slower until the next writer saves it.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable

import numpy as np

from lookalike import durable
from lookalike.disk_errors import writing
from lookalike.errors import DamagedIndexWarning, InvalidInputError
from lookalike.indexes.base import IdArray
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.neighbours import NeighbourTable, build_neighbours, update_neighbours
from lookalike.store import IndexStore

#: Up to this many images, a search that needs a statistic the index does not keep builds one in
#: memory (seconds); beyond, it is refused with the fix rather than left to run for minutes.
BUILD_WHILE_SEARCHING = 20_000


class NeighbourFile:
    """Reads, updates and writes one index directory's neighbour statistic."""

    def __init__(self, store: IndexStore) -> None:
        self._store = store
        self._path = store.layout.neighbours
        self._table: NeighbourTable | None = None
        self._stamp: tuple[int, int] = (-1, -1)  # (file mtime, catalog generation) of _table

    def current(self, ids: IdArray, vectors: Callable[[], ExactIndex], k: int) -> NeighbourTable:
        """The table of the catalog's present state (``ids``, sorted, and the ``vectors`` behind
        them, loaded only when the table must be updated) with ``k`` neighbours."""
        generation = self._store.catalog.generation()
        saved = self._mtime()
        if self._table is not None and self._stamp == (saved, generation) and self._table.k == k:
            return self._table
        table = self.load() if self._table is None or self._stamp[0] != saved else self._table
        if table is None and len(ids) > BUILD_WHILE_SEARCHING:
            raise InvalidInputError(
                f"{self._store.directory}: the hubness correction needs the neighbour statistic, "
                f"which this index does not keep, and building it for {len(ids):,} images "
                "takes minutes; record it once with `lookalike index PHOTOS --index "
                f"{self._store.directory} --hubness` (or SearchEngine.set_reranking(hubness=True)),"
                " or search without --hubness"
            )
        if table is None or not _covers(table, ids, k):
            table = self._brought_up(table, vectors(), k)
        self._table = table
        self._stamp = (saved, generation)
        return table

    def sync(self, ids: IdArray, vectors: Callable[[], ExactIndex], k: int) -> NeighbourTable:
        """Bring the saved table up to the catalog's state and save it if it changed (writers
        only; see :meth:`current`)."""
        loaded = self.load()
        if _covers(loaded, ids, k):
            assert loaded is not None
            return loaded
        table = self._brought_up(loaded, vectors(), k)
        if table is not loaded:
            self.save(table)
        return table

    def save(self, table: NeighbourTable) -> None:
        """Write ``table`` durably (readers see the old file or the new one)."""
        with writing(self._store.directory):
            durable.write_with(self._path, lambda fh: _write(fh, table))
        self._table = None

    def exists(self) -> bool:
        return self._path.is_file()

    def load(self) -> NeighbourTable | None:
        """The saved table; None if there is none, or it is damaged (derived data: rebuilt)."""
        if not self._path.is_file():
            return None
        try:
            with self._path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
                table = NeighbourTable(
                    np.asarray(data["ids"], dtype=np.int64),
                    np.asarray(data["neighbours"], dtype=np.int64),
                    np.asarray(data["similarities"], dtype=np.float32),
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(
                f"{self._path}: unreadable neighbour statistic ({exc}); rebuilding it "
                "(the next `lookalike index` saves it again)",
                DamagedIndexWarning,
                stacklevel=3,
            )
            return None
        n = len(table.ids)
        if (
            table.neighbours.ndim != 2
            or table.neighbours.shape[0] != n
            or table.similarities.shape != table.neighbours.shape
            or not bool(np.all(table.ids[1:] > table.ids[:-1]))
        ):
            warnings.warn(
                f"{self._path}: neighbour statistic of the wrong shape or order; rebuilding it",
                DamagedIndexWarning,
                stacklevel=3,
            )
            return None
        return table

    def _mtime(self) -> int:
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return -1

    @staticmethod
    def _brought_up(table: NeighbourTable | None, vectors: ExactIndex, k: int) -> NeighbourTable:
        if table is None:
            return build_neighbours(vectors.ids, vectors.vectors, k)
        return update_neighbours(table, vectors.ids, vectors.vectors, k)


def _covers(table: NeighbourTable | None, ids: IdArray, k: int) -> bool:
    """Whether ``table`` is the statistic of exactly these ids (ids are never reused)."""
    return table is not None and table.k == k and np.array_equal(table.ids, ids)


def _write(fh: io.BufferedWriter | object, table: NeighbourTable) -> None:
    np.savez(
        fh,  # type: ignore[arg-type]
        ids=table.ids,
        neighbours=table.neighbours,
        similarities=table.similarities,
    )


__all__ = ["BUILD_WHILE_SEARCHING", "NeighbourFile"]
