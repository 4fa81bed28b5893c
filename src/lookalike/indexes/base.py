"""The protocol of a vector index, and the one place scores are derived from distances."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]


class VectorIndex(Protocol):
    """FAISS-like vocabulary: ``search(queries, k) -> (scores, ids)``, batch first.

    Scores are higher-is-more-similar whatever the metric; ids of missing results are -1.
    """

    metric: str

    def __len__(self) -> int: ...

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]: ...


def check_metric(metric: str) -> None:
    """Refuse a metric the indexes do not know (the one message for every index)."""
    if metric not in ("cosine", "euclidean"):
        raise InvalidInputError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def check_rows(ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.generic]) -> None:
    """Refuse vectors that are not one row per id (the one message for every index)."""
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise InvalidInputError(
            f"ids and vectors must match: {len(ids)} ids, vectors of shape {vectors.shape}"
        )


def empty_results(n: int, k: int) -> tuple[FloatArray, IdArray]:
    """(scores, ids) for ``n`` queries with no result yet: -inf and -1 in every place."""
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


def euclidean_score(distance: FloatArray) -> FloatArray:
    """Euclidean scores are negated distances, so that higher is always more similar."""
    out: FloatArray = -distance
    return out


def distance_from_score(metric: str, score: float) -> float:
    """The distance a score stands for: 1 - cosine similarity, or the euclidean distance."""
    return 1.0 - score if metric == "cosine" else -score
