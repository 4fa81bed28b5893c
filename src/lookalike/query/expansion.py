"""Alpha query expansion: each query is averaged with its best results, weighted by their
similarity to it raised to the power alpha, and searched again (with the same filter).

Few results (n = 2 with the default embedder) help; more start to pull a copy's own match
away from rank 1. The image a query by indexed id excludes is never averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.embedders.base import l2_normalise
from lookalike.query.reranking import RerankContext, Shortlist


@dataclass(frozen=True)
class QueryExpansion:
    """``alpha``: how sharply weights fall with similarity; ``n``: results averaged in."""

    alpha: float = 3.0
    n: int = 2

    def depth(self, k: int) -> int:
        return max(k, self.n + 1)  # one more for an excluded image

    def rerank(self, shortlist: Shortlist, context: RerankContext) -> Shortlist:
        ids = shortlist.ids
        usable = ids >= 0
        if context.exclude is not None:
            excluded = np.array([-2 if e is None else e for e in context.exclude], np.int64)
            usable &= ids != excluded[:, None]
        # The first n usable candidates of each row, in the shortlist's order.
        rank = np.cumsum(usable, axis=1)
        chosen = np.where(usable & (rank <= self.n), ids, -1)
        if not bool((chosen >= 0).any()):
            return shortlist
        vectors, found = context.vectors(chosen)
        sims = np.einsum("nd,ncd->nc", shortlist.queries, vectors)
        weights = np.where(found & (chosen >= 0), np.maximum(sims, 0.0) ** self.alpha, 0.0)
        expanded = shortlist.queries + np.einsum("nc,ncd->nd", weights, vectors)
        expanded = l2_normalise(expanded.astype(np.float32))
        _, new_ids = context.search(expanded, ids.shape[1])
        # Scores stay each candidate's similarity to the user's own query.
        candidates, present = context.vectors(new_ids)
        scores = np.einsum("nd,ncd->nc", context.originals, candidates).astype(np.float32)
        kept = present & (new_ids >= 0)
        scores = np.where(kept, scores, -np.inf).astype(np.float32)
        return Shortlist(expanded, scores, np.where(kept, new_ids, -1))


__all__ = ["QueryExpansion"]
