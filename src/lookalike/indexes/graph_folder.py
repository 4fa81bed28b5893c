"""The HNSW graph that an index directory keeps in ``ann/``, kept in step with its catalog.

Writers call :meth:`GraphFolder.sync` after indexing: the saved graph gains the new images and
marks the removed ones deleted (a rebuild happens only when the PCA setting changes), its
recall@10 against exact search is measured, and it is saved. Readers call
:meth:`GraphFolder.current`, which reloads the graph when a writer saved a new one and applies,
in memory, whatever was committed after that.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from lookalike.errors import IndexFormatError
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import POINTER, GraphInfo, HnswIndex, HnswParams, measure_recall
from lookalike.store import ANN, IndexStore


class GraphFolder:
    def __init__(self, store: IndexStore) -> None:
        self._store = store
        self._folder = store.directory / ANN
        self._graph: HnswIndex | None = None
        self._stamp: tuple[int, int] = (-1, -1)

    def sync(self, exact: ExactIndex, *, pca_dim: int | None = None) -> GraphInfo:
        metric = self._store.manifest.metric
        loaded = HnswIndex.load(self._folder, metric=metric)
        if loaded is not None and pca_dim is not None and loaded[0].params.pca_dim != pca_dim:
            loaded = None  # another projection: the graph is rebuilt
        if loaded is None:
            graph = HnswIndex.build(
                exact.ids, exact.vectors, metric=metric, params=HnswParams(pca_dim=pca_dim or 0)
            )
        else:
            graph = loaded[0]
            self._apply(graph, exact.ids)
        recall, queries = measure_recall(graph, exact)
        info = graph.save(
            self._folder, recall=recall, queries=queries, dim=self._store.manifest.dim
        )
        self._graph = None
        return info

    def current(self) -> HnswIndex:
        """The saved graph with every later commit applied."""
        generation = self._store.catalog.generation()
        pointer = self._folder / POINTER
        saved = pointer.stat().st_mtime_ns if pointer.exists() else -1
        if self._graph is None or self._stamp != (saved, generation):
            if self._graph is None or self._stamp[0] != saved:
                loaded = HnswIndex.load(self._folder, metric=self._store.manifest.metric)
                if loaded is None:
                    raise IndexFormatError(
                        f"{self._store.directory}: no HNSW graph yet; run `lookalike index` "
                        "once more, or use --index-type exact"
                    )
                self._graph = loaded[0]
            ids, _, _ = self._store.catalog.locations()
            self._apply(self._graph, ids)
            self._stamp = (saved, generation)
        return self._graph

    def recall(self) -> float | None:
        """The recall@10 measured when the graph in use was saved, if there is one."""
        pointer = self._folder / POINTER
        if not pointer.is_file():
            return None
        try:
            return float(json.loads(pointer.read_text())["recall_at_10"])
        except (OSError, ValueError, KeyError):
            return None

    def _apply(self, graph: HnswIndex, ids: npt.NDArray[np.int64]) -> None:
        current = {int(i) for i in ids.tolist()}
        present = graph.ids()
        graph.remove(sorted(present - current))
        added = sorted(current - present)
        if added:
            graph.add(np.array(added, dtype=np.int64), self._store.vectors_for(added))
