"""Hubness correction (CSLS): an image close to everything (a hub) turns up in the results of
queries it has nothing to do with. Over a shortlist of candidates, each candidate x is ordered
by 2*cos(q, x) - r_x, where r_x is x's mean similarity to its k nearest other indexed images
(computed at index time and kept up to date: indexes/neighbour_file.py). The query's own r_q
is the same for all its candidates, so it does not change their order and is left out.

The score reported stays cos(q, x): the similarity users read (and threshold copies with);
the correction decides the order only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.query.reranking import RerankContext, Shortlist


@dataclass(frozen=True)
class HubnessCorrection:
    """``k``: neighbours behind r_x; ``shortlist``: candidates re-ordered per query."""

    k: int = 10
    shortlist: int = 100

    def depth(self, k: int) -> int:
        return max(k, self.shortlist)

    def rerank(self, shortlist: Shortlist, context: RerankContext) -> Shortlist:
        ids = shortlist.ids
        vectors, found = context.vectors(ids)
        cosine = np.einsum("nd,ncd->nc", shortlist.queries, vectors)
        hubness = context.neighbours(self.k).hubness(ids)
        corrected = np.where(found & (ids >= 0), 2.0 * cosine - hubness, -np.inf)
        order = np.argsort(-corrected, axis=1, kind="stable")
        return Shortlist(
            shortlist.queries,
            np.take_along_axis(shortlist.scores, order, axis=1),
            np.take_along_axis(ids, order, axis=1),
        )


__all__ = ["HubnessCorrection"]
