"""Candidate search: each query's best-scoring images, from the structure the index's type
chooses (exact search, the HNSW graph) or from an attached Milvus collection.

Filters are exact: a filtered search scans every vector that passes the filter, since an
approximate structure could return k candidates of which none passes.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from lookalike.collection import Collection
from lookalike.errors import DamagedGraphError, DamagedIndexWarning, EmbedderMismatchError
from lookalike.filters import SearchFilter
from lookalike.index_model import describe
from lookalike.indexes.base import FloatArray, IdArray, VectorIndex
from lookalike.indexes.graph_folder import GraphFolder
from lookalike.indexes.registry import Structure, resolve_index_type
from lookalike.store import IndexStore

if TYPE_CHECKING:
    from lookalike.indexes.milvus import MilvusIndex, SyncReport


class CandidateSearch:
    """Routes a batch of query vectors to the structure that should answer it."""

    def __init__(self, store: IndexStore, collection: Collection, graphs: GraphFolder) -> None:
        self._store = store
        self._collection = collection
        self._graphs = graphs
        self._remote: MilvusIndex | None = None
        self._structures: Mapping[Structure, Callable[[], VectorIndex]] = MappingProxyType(
            {"exact": collection.vector_index, "hnsw": graphs.current}
        )

    def structure(self) -> Structure:
        """The structure unfiltered searches use now, as the index type decides."""
        kind = resolve_index_type(self._store.manifest.index_type)
        return kind.structure(self._collection.count(), graph_saved=self._graphs.exists())

    def check(self, vectors: FloatArray) -> FloatArray:
        """Query vectors as a float32 (n, dim) batch, or an error if another model made them."""
        dim = self._store.manifest.dim
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise EmbedderMismatchError(
                f"query vectors have shape {vectors.shape}, but this index holds {dim}-d vectors "
                f"from {describe(self._store.manifest.embedder)}; embed queries with the same "
                "model"
            )
        return vectors

    def search(
        self, vectors: FloatArray, k: int, *, where: SearchFilter | None = None
    ) -> tuple[FloatArray, IdArray]:
        """(scores, ids) of shape (n, k), best first; -1 where fewer than k images qualify."""
        if where is not None and not where.empty:
            snapshot = self._collection.snapshot()  # vectors and records of one commit
            index = snapshot.vectors
            allowed = where.mask(index.ids, snapshot.records, snapshot.metadata)
            return index.search(vectors, k, allowed=allowed)
        if self._remote is not None:
            return self._remote.search(vectors, k)
        structure = self.structure()
        try:
            answering = self._structures[structure]()
        except DamagedGraphError as exc:
            # The graph is derived data: exact search gives the same answers, only slower.
            warnings.warn(f"{exc}; searching exactly meanwhile", DamagedIndexWarning, stacklevel=2)
            answering = self._structures["exact"]()
        return answering.search(vectors, k)

    def attach_milvus(
        self, uri: str, *, collection: str | None = None, token: str | None = None
    ) -> SyncReport:
        """Push the index's vectors to a Milvus collection (only what changed) and answer
        unfiltered searches from it from then on."""
        from lookalike.indexes.milvus import MilvusIndex

        directory = str(self._store.directory.resolve())
        name = collection or "lookalike_" + hashlib.sha256(directory.encode()).hexdigest()[:16]
        manifest = self._store.manifest
        remote = MilvusIndex(uri, name, dim=manifest.dim, metric=manifest.metric, token=token)
        exact = self._collection.vector_index()
        report = remote.sync_from(exact.ids, exact.vectors)
        self.close()
        self._remote = remote
        return report

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None


__all__ = ["CandidateSearch"]
