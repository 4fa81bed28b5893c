"""Re-ranking: stages that reorder (or re-score) each query's candidates after the search.

None is on by default. A new one (query expansion, hubness correction, spatial verification,
one result per product...) is one class with a ``rerank`` method, switched on in
:func:`default_rerankers` from what the index records, so every front end gets it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lookalike.indexes.base import FloatArray, IdArray
from lookalike.manifest import Manifest


class Reranker(Protocol):
    """One re-ranking stage, batch first: ``queries`` (n, dim), ``scores`` and ``ids`` (n, c)
    best first, -1 marking an empty slot. Returns new (scores, ids) in the same layout, best
    first; it may drop candidates (fewer columns, or -1) but must keep scores higher-is-better."""

    def rerank(
        self, queries: FloatArray, scores: FloatArray, ids: IdArray
    ) -> tuple[FloatArray, IdArray]: ...


def rerank(
    stages: Sequence[Reranker], queries: FloatArray, scores: FloatArray, ids: IdArray
) -> tuple[FloatArray, IdArray]:
    """Run the stages in order."""
    for stage in stages:
        scores, ids = stage.rerank(queries, scores, ids)
    return scores, ids


def default_rerankers(manifest: Manifest) -> tuple[Reranker, ...]:
    """The stages an index's queries go through: the one place where stages are switched on
    (from settings the manifest records, so a query is treated like its index)."""
    del manifest  # no stage is recorded yet
    return ()


__all__ = ["Reranker", "default_rerankers", "rerank"]
