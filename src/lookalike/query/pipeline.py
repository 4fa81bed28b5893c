"""The one road every query takes, whoever asks (CLI, REST API, page, evaluation, Python):

    decode -> embed -> candidate search -> re-rank stages -> filter, sort -> matches

Batch first: a single query is a batch of one. Queries by an indexed image skip the first two
stages (its stored vector is the query) and leave the image itself out of its results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lookalike.collection import Collection
from lookalike.embedders.base import Embedder
from lookalike.errors import InvalidInputError
from lookalike.filters import SearchFilter
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.matches import Match, SearchResult
from lookalike.query.candidates import CandidateSearch
from lookalike.query.decoding import DecodedQueries, Query, decode_queries
from lookalike.query.embedding import embed_pixels
from lookalike.query.match_builder import MatchBuilder
from lookalike.query.reranking import RerankContext, Reranker
from lookalike.query.reranking import rerank as run_stages
from lookalike.rerank_settings import RerankOverride


@dataclass(frozen=True)
class QueryPipeline:
    """The stages of a search, each with one job. Decoding (:meth:`decode`) needs no lock and
    may run anywhere; the other stages read the index.

    Example:
        >>> pipeline = engine.pipeline  # doctest: +SKIP
        >>> decoded = pipeline.decode(["query.jpg"])  # doctest: +SKIP
        >>> results = pipeline.search_decoded(decoded, k=5)  # doctest: +SKIP
    """

    embedder: Callable[[], Embedder]
    collection: Collection
    candidates: CandidateSearch
    matches: MatchBuilder
    rerankers: tuple[Reranker, ...] = ()
    #: The index's own stages (``query.reranking.default_rerankers`` over its manifest), with a
    #: search's override applied; ``rerankers`` run after them.
    index_stages: Callable[[RerankOverride | None], tuple[Reranker, ...]] = lambda _: ()

    def with_rerankers(self, *stages: Reranker) -> QueryPipeline:
        """This pipeline with ``stages`` run after the present re-ranking stages."""
        return replace(self, rerankers=(*self.rerankers, *stages))

    # -- stages -----------------------------------------------------------------------------------

    def decode(
        self,
        queries: Sequence[Query],
        *,
        names: Sequence[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> DecodedQueries:
        """Query images (paths, file bytes, PIL images) as pixels for the index's embedder;
        images over ``max_pixels`` are refused from their header (a server passes a lower
        limit for untrusted uploads)."""
        return decode_queries(
            queries, self.embedder().input_spec, names=names, max_pixels=max_pixels
        )

    def embed(self, decoded: DecodedQueries) -> npt.NDArray[np.float32]:
        return embed_pixels(self.embedder(), decoded.pixels)

    # -- whole searches ---------------------------------------------------------------------------

    def search(
        self,
        queries: Sequence[Query],
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
        rerank: RerankOverride | None = None,
    ) -> list[SearchResult]:
        """The k most similar indexed images for each query image, best first. ``rerank``
        switches re-ranking stages on or off for this search (None: as the index records)."""
        return self.search_decoded(
            self.decode(queries), k=k, where=where, sort_by=sort_by, rerank=rerank
        )

    def search_decoded(
        self,
        decoded: DecodedQueries,
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
        rerank: RerankOverride | None = None,
    ) -> list[SearchResult]:
        """:meth:`search` for queries already decoded."""
        found = self.search_vectors(
            self.embed(decoded), k=k, where=where, sort_by=sort_by, rerank=rerank
        )
        return [SearchResult(n, m) for n, m in zip(decoded.names, found, strict=True)]

    def search_ids(
        self,
        image_ids: Sequence[int],
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
        rerank: RerankOverride | None = None,
    ) -> list[SearchResult]:
        """ "More like this": for each indexed image, the k others most similar to it."""
        names = [self.collection.record(i)[0].path for i in image_ids]
        vectors = self.collection.vectors_for(list(image_ids))
        found = self.search_vectors(
            vectors, k=k, where=where, sort_by=sort_by, exclude=list(image_ids), rerank=rerank
        )
        return [SearchResult(n, m) for n, m in zip(names, found, strict=True)]

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int = 10,
        where: SearchFilter | None = None,
        sort_by: str | None = None,
        exclude: Sequence[int | None] | None = None,
        rerank: RerankOverride | None = None,
    ) -> list[tuple[Match, ...]]:
        """Matches for query vectors made by the index's embedder, shape (n, dim).
        ``exclude``: per query, an image id to leave out of its results."""
        vectors = self.candidates.check(vectors)
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if exclude is not None and len(exclude) != len(vectors):
            raise InvalidInputError(f"{len(exclude)} ids to exclude for {len(vectors)} queries")
        # One more candidate stands in for an excluded image, so that searches by an indexed
        # image keep using the fastest structure instead of an exact scan.
        extra = 1 if exclude is not None and any(e is not None for e in exclude) else 0
        stages = (*self.index_stages(rerank), *self.rerankers)
        depth = max([k + extra, *(stage.depth(k + extra) for stage in stages)])
        scores, ids = self.candidates.search(vectors, depth, where=where)
        if stages:
            context = RerankContext(
                vectors,
                lambda queries, depth: self.candidates.search(queries, depth, where=where),
                self.collection.stored_vectors,
                self.collection.neighbour_table,
                tuple(exclude) if exclude is not None else None,
            )
            scores, ids = run_stages(stages, context, scores, ids)
        return self.matches(scores, ids, k=k, sort_by=sort_by, exclude=exclude)


__all__ = ["QueryPipeline"]
