"""Re-ranking: stages that reorder (or re-score) each query's candidates after the search.

Each stage is one class with ``depth`` (how many candidates it wants) and ``rerank``; the
stages an index's queries use are switched on in :func:`default_rerankers` from the settings
its manifest records (a search may override them), so every front end gets them at once.
Stages: query expansion (query/expansion.py), hubness correction (query/hubness.py).

What a stage sees and hands on is a :class:`Shortlist`. Its ``scores`` stay what users read,
each candidate's similarity to the user's query (cosine similarity); a stage orders the
candidates by whatever it measures, and carries each candidate's score along with it. So
after re-ranking, scores need not decrease down the list: the order is the stages', the
score is the similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError
from lookalike.indexes.base import FloatArray, IdArray
from lookalike.indexes.neighbours import NeighbourTable
from lookalike.manifest import Manifest
from lookalike.rerank_settings import RerankOverride


@dataclass(frozen=True)
class Shortlist:
    """Each query's candidates, batch first. ``queries`` (n, dim): the vectors that rank the
    candidates now (query expansion replaces them); ``scores`` and ``ids`` (n, c), in the
    order the stages so far put them, -1 marking an empty slot; ``scores``: each candidate's
    similarity to the user's query, higher is better."""

    queries: FloatArray
    scores: FloatArray
    ids: IdArray


@dataclass(frozen=True)
class RerankContext:
    """What stages may use besides the shortlist. ``originals``: the user's query vectors;
    ``search(vectors, depth)``: the candidate search, with the query's filter; ``vectors(ids)``:
    stored vectors of ids of any shape (zeros where an id is not indexed) and which are;
    ``neighbours(k)``: the neighbour statistic of the indexed images; ``exclude``: per query,
    the image left out of its results (a search by an indexed image), or None."""

    originals: FloatArray
    search: Callable[[FloatArray, int], tuple[FloatArray, IdArray]]
    vectors: Callable[[IdArray], tuple[FloatArray, npt.NDArray[np.bool_]]]
    neighbours: Callable[[int], NeighbourTable]
    exclude: tuple[int | None, ...] | None = None


class Reranker(Protocol):
    """One re-ranking stage, batch first. ``depth(k)``: candidates per query it needs to
    answer k (the pipeline searches the deepest any stage asks for). ``rerank`` returns a new
    shortlist in the same layout; it may drop candidates (fewer columns, or -1)."""

    def depth(self, k: int) -> int: ...

    def rerank(self, shortlist: Shortlist, context: RerankContext) -> Shortlist: ...


def rerank(
    stages: Sequence[Reranker], context: RerankContext, scores: FloatArray, ids: IdArray
) -> tuple[FloatArray, IdArray]:
    """Run the stages in order over the candidate search's (scores, ids)."""
    shortlist = Shortlist(context.originals, scores, ids)
    for stage in stages:
        shortlist = stage.rerank(shortlist, context)
    return shortlist.scores, shortlist.ids


def default_rerankers(
    manifest: Manifest, override: RerankOverride | None = None
) -> tuple[Reranker, ...]:
    """The stages an index's queries go through: the one place where stages are switched on,
    from the settings the manifest records (so a query is treated like its index), with a
    search's ``override`` applied."""
    from lookalike.query.expansion import QueryExpansion
    from lookalike.query.hubness import HubnessCorrection

    settings = manifest.reranking if override is None else override.apply(manifest.reranking)
    if settings.any_on and manifest.metric != "cosine":
        raise InvalidInputError(
            "query expansion and hubness correction need a cosine index, and this one is "
            f"{manifest.metric}; search without --expansion and --hubness"
        )
    stages: list[Reranker] = []
    if settings.expansion:
        stages.append(QueryExpansion(settings.expansion_alpha, settings.expansion_n))
    if settings.hubness:
        stages.append(HubnessCorrection(settings.hubness_k, settings.shortlist))
    return tuple(stages)


__all__ = ["RerankContext", "Reranker", "Shortlist", "default_rerankers", "rerank"]
