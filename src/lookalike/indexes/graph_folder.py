"""The HNSW graph an index directory keeps (in its layout's graph folder), in step with its
catalog.

Writers call :meth:`GraphFolder.sync` after indexing: the saved graph gains the new images and
marks the removed ones deleted (a rebuild happens only when the projection changes), its
recall@10 against exact search is measured, and it is saved. Readers call
:meth:`GraphFolder.current`, which reloads the graph when a writer saved a new one and applies,
in memory, whatever was committed after that.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np

from lookalike.disk_errors import writing
from lookalike.errors import DamagedGraphError, IndexFormatError
from lookalike.indexes.hnsw import (
    POINTER,
    GraphInfo,
    HnswIndex,
    HnswParams,
    measure_recall,
    read_pointer,
)
from lookalike.store import IndexStore
from lookalike.vector_table import VectorTable

#: Collections at least this big, of vectors with more than PCA_MIN_DIM dimensions, get a graph
#: on a PCA projection to DEFAULT_PCA dimensions (candidates re-scored with the full vectors)
#: unless told otherwise: it builds several times faster than a graph on 1280-d vectors.
PCA_MIN_COUNT = 10_000
PCA_MIN_DIM = 256
DEFAULT_PCA = 128


def default_pca(count: int, dim: int) -> int:
    """The PCA dimension a new graph gets when none is asked for (0: no projection)."""
    return DEFAULT_PCA if count >= PCA_MIN_COUNT and dim > PCA_MIN_DIM else 0


class GraphFolder:
    def __init__(self, store: IndexStore) -> None:
        self._store = store
        self._folder = store.layout.graph
        self._graph: HnswIndex | None = None
        self._stamp: tuple[int, int] = (-1, -1)

    def sync(
        self,
        *,
        pca_dim: int | None = None,
        whiten: bool | None = None,
        rerank: int | None = None,
    ) -> GraphInfo:
        """Bring the saved graph up to date with the committed vectors (None: keep the saved
        setting)."""
        metric = self._store.manifest.metric
        try:
            loaded = HnswIndex.load(self._folder, metric=metric)
        except DamagedGraphError:
            loaded = None  # derived data: a damaged graph is rebuilt from the vectors
        if loaded is not None:
            saved = loaded[0].params
            if (pca_dim is not None and saved.pca_dim != pca_dim) or (
                whiten is not None and saved.whiten != whiten
            ):
                loaded = None  # another projection: the graph is rebuilt
        # The vectors candidates are re-scored with, as stored, memory-mapped; a new graph is
        # built from them too and its recall measured against them, a block at a time: no copy
        # of the collection in memory (ten million int8 vectors are 12 GiB; the graph, 6 GiB).
        table = self._store.vector_table(populate=False)
        if loaded is None:
            dim = default_pca(len(table), self._store.manifest.dim) if pca_dim is None else pca_dim
            params = HnswParams(pca_dim=dim, whiten=bool(whiten))
            if rerank is not None:
                params = replace(params, rerank=rerank)
            graph = HnswIndex.build_from(table, metric=metric, params=params)
        else:
            graph = loaded[0]
            if rerank is not None:
                graph.params = replace(graph.params, rerank=rerank)
            graph.table = table
            self._apply(graph, table)
        recall, queries = measure_recall(graph, table)
        with writing(self._store.directory):
            info = graph.save(
                self._folder, recall=recall, queries=queries, dim=self._store.manifest.dim
            )
        self._graph = None
        return info

    def current(self) -> HnswIndex:
        """The saved graph with every later commit applied. A damaged graph raises
        :class:`DamagedGraphError` (checked before it is parsed); callers fall back to exact
        search."""
        generation = self._store.catalog.generation()
        try:
            saved = (self._folder / POINTER).stat().st_mtime_ns
        except FileNotFoundError:
            saved = -1
        if self._graph is None or self._stamp != (saved, generation):
            if self._graph is None or self._stamp[0] != saved:
                loaded = HnswIndex.load(self._folder, metric=self._store.manifest.metric)
                if loaded is None:
                    raise IndexFormatError(
                        f"{self._store.directory}: no HNSW graph yet; run `lookalike index` "
                        "once more, or use --index-type exact"
                    )
                self._graph = loaded[0]
            graph = self._graph
            # Re-scoring reads candidates at random: map their pages up front (see store).
            rescores = graph.projection is not None and graph.params.rerank > 0
            graph.table = self._store.vector_table(populate=rescores)
            self._apply(graph, graph.table)
            self._stamp = (saved, generation)
        return self._graph

    def exists(self) -> bool:
        """Whether a graph has been saved (searches can use it)."""
        return (self._folder / POINTER).is_file()

    def drop(self) -> bool:
        """Delete the saved graph (derived data: the next ``sync`` rebuilds it); whether there
        was one."""
        had = self._folder.exists()
        if had:
            shutil.rmtree(self._folder)
        self._graph = None
        return had

    def saved(self) -> GraphInfo | None:
        """What the pointer says of the graph in use (recall, parameters), if there is one."""
        return read_pointer(self._folder)

    def _apply(self, graph: HnswIndex, table: VectorTable) -> None:
        """Add to and delete from ``graph`` until it holds exactly the ids of ``table``."""
        present = graph.id_array()
        graph.remove(np.setdiff1d(present, table.ids, assume_unique=True).tolist())
        added = np.setdiff1d(table.ids, present, assume_unique=True)
        if len(added):
            graph.add(added, table.take(added))
