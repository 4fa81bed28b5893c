"""Retrieval metrics as pure functions over ranked relevance.

A ranking is a boolean array: ``ranked[i]`` tells whether the result at rank i+1 is relevant to
the query. ``n_relevant`` is how many relevant items the gallery holds in all (the ranking may be
cut short). Conventions, decided once:

- Ties in scores are ranked by gallery position (a stable sort), see :func:`rank`.
- Precision@k divides by k even when fewer than k results exist: missing results count as wrong.
- A query with no relevant item in the gallery has no AP or recall: it is left out of means,
  and the number left out is reported.
- Per-query scores (:func:`query_scores`) and a paired bootstrap interval over queries
  (:func:`lookalike.evaluation.bootstrap.paired_bootstrap`) compare two embeddings on the
  same queries.
- N-S (UKBench): the number of the query's group found in the top 4 of a ranking that includes
  the query itself; 4.0 is perfect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

RECALL_LEVELS = np.linspace(0.0, 1.0, 11)


def rank(scores: npt.ArrayLike, relevant: npt.ArrayLike) -> BoolArray:
    """Order ``relevant`` by descending ``scores``; equal scores keep gallery order."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    return np.asarray(relevant, dtype=bool)[order]


def precision_at_k(ranked: BoolArray, k: int) -> float:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float(np.count_nonzero(ranked[:k])) / k


def recall_at_k(ranked: BoolArray, k: int, n_relevant: int) -> float | None:
    """Fraction of the relevant items found in the top k; None when there are none."""
    if n_relevant == 0:
        return None
    return float(np.count_nonzero(ranked[:k])) / n_relevant


def hit_at_k(ranked: BoolArray, k: int) -> float:
    """1.0 if any of the top k is relevant (the 'Recall@K' of metric-learning papers)."""
    return 1.0 if bool(np.any(ranked[:k])) else 0.0


def average_precision(ranked: BoolArray, n_relevant: int) -> float | None:
    """Mean of precision@i over the ranks i of the relevant items (relevant items missing from
    the ranking count as precision 0); None when the gallery holds no relevant item."""
    if n_relevant == 0:
        return None
    hits = np.flatnonzero(ranked)
    if len(hits) == 0:
        return 0.0
    precisions = np.arange(1, len(hits) + 1) / (hits + 1)
    return float(precisions.sum() / n_relevant)


def ns_score(ranked_with_query: BoolArray, top: int = 4) -> float:
    """UKBench N-S: relevant items (the query itself included) among the first ``top``."""
    return float(np.count_nonzero(ranked_with_query[:top]))


def interpolated_precision(ranked: BoolArray, n_relevant: int) -> FloatArray | None:
    """Precision at the 11 standard recall levels (max precision at any recall >= level)."""
    if n_relevant == 0:
        return None
    hits = np.cumsum(ranked)
    precision = hits / np.arange(1, len(ranked) + 1)
    recall = hits / n_relevant
    out = np.zeros(len(RECALL_LEVELS))
    for i, level in enumerate(RECALL_LEVELS):
        reached = precision[recall >= level - 1e-12]
        out[i] = float(reached.max()) if len(reached) else 0.0
    return out


def mean_or_none(values: list[float | None]) -> tuple[float | None, int]:
    """(mean of the defined values, how many were undefined)."""
    defined = [v for v in values if v is not None]
    missing = len(values) - len(defined)
    return (float(np.mean(defined)) if defined else None), missing


@dataclass(frozen=True)
class QueryScores:
    """Per-query scores of a labelled set searched against itself, in row order: AP and
    precision@k (NaN AP for a query whose label no other row has)."""

    average_precision: FloatArray
    precision_at_k: FloatArray
    k: int


def query_scores(
    vectors: npt.ArrayLike, labels: npt.ArrayLike, *, k: int = 10, block: int = 256
) -> QueryScores:
    """Cosine retrieval where each row is a query against all the other rows and rows with the
    same label are relevant; ties keep row order, as in :func:`rank`."""
    x = np.asarray(vectors, dtype=np.float32)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"vectors must be (n, d) with one label per row, got {x.shape}, {y.shape}")
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ap = np.full(len(y), np.nan)
    pk = np.zeros(len(y))
    for start in range(0, len(y), block):
        sims = unit[start : start + block] @ unit.T
        for row, sim in enumerate(sims):
            query = start + row
            others = np.delete(np.arange(len(y)), query)
            ranked = rank(sim[others], y[others] == y[query])
            value = average_precision(ranked, int(np.count_nonzero(ranked)))
            ap[query] = np.nan if value is None else value
            pk[query] = precision_at_k(ranked, k)
    return QueryScores(ap, pk, k)
