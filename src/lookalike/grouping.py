"""Grouping near-duplicates: exact copies, edited copies and near-identical shots.

Candidates come from each image's nearest neighbours (never an all-pairs matrix), found in a
PCA-reduced space when the collection is large; every candidate pair is then re-scored with
the full vectors and kept when its cosine similarity reaches the threshold (and, when a
``confirm`` check is given, such as copy mode's geometric verification, when it passes that
too). Kept pairs are joined into groups (connected components, union-find).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import HnswIndex, HnswParams

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

#: Confirms candidate pairs given by their ids (two arrays); returns which pass.
PairCheck = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]]

_REDUCE_ABOVE = 20_000
_REDUCED_DIM = 64


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of each other: ids in ascending order, and the weakest link."""

    ids: tuple[int, ...]
    min_score: float


def neighbour_pairs(
    vectors: FloatArray, *, k: int = 10
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row pairs (i < j) where j is among i's k nearest neighbours (or i among j's)."""
    return pairs_of(nearest_neighbours(vectors, k=k))


def nearest_neighbours(vectors: FloatArray, *, k: int) -> IdArray:
    """Each row's k nearest other rows, best first (-1 where fewer were found).

    Small collections are searched exactly; large ones through an HNSW graph built on a 64-d
    PCA projection, which finds near-duplicates' neighbours just as well at a fraction of the
    cost of exact search (an all-pairs pass over 100,000 images takes minutes here).
    """
    n = len(vectors)
    if n < 2:
        return np.full((n, k), -1, dtype=np.int64)
    kk = min(k, n - 1)
    rows = np.arange(n, dtype=np.int64)
    index: ExactIndex | HnswIndex
    if n <= _REDUCE_ABOVE:
        index = ExactIndex(rows, vectors)
    else:
        index = HnswIndex.build(rows, vectors, metric="cosine", params=_graph_params(vectors, kk))
    # One more than k: each row usually finds itself first, and is dropped here.
    _, found = index.search(vectors, kk + 1)
    found[found == rows[:, None]] = -1
    found = np.take_along_axis(found, np.argsort(found < 0, axis=1, kind="stable"), axis=1)
    out = np.full((n, k), -1, dtype=np.int64)
    out[:, :kk] = found[:, :kk]
    return out


def pairs_of(neighbours: IdArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row pairs (i < j), each once, from each row's neighbour rows (-1: none)."""
    n = len(neighbours)
    a = np.repeat(np.arange(n, dtype=np.int64), neighbours.shape[1])
    b = neighbours.ravel()
    valid = b >= 0
    low, high = np.minimum(a[valid], b[valid]), np.maximum(a[valid], b[valid])
    pairs = np.unique(low * n + high)
    return pairs // max(n, 1), pairs % max(n, 1)


def _graph_params(vectors: FloatArray, k: int) -> HnswParams:
    """A light graph: candidates only need to contain the near-duplicates, whose pairs are
    re-scored with the full vectors afterwards, so the graph itself re-scores nothing."""
    pca = _REDUCED_DIM if vectors.shape[1] > _REDUCED_DIM else 0
    return HnswParams(m=12, ef_construction=40, ef_search=max(2 * k, 40), pca_dim=pca, rerank=0)


def group_duplicates(
    ids: IdArray,
    vectors: FloatArray,
    *,
    threshold: float = 0.75,
    k: int = 10,
    confirm: PairCheck | None = None,
) -> list[DuplicateGroup]:
    """Groups of at least two images whose cosine similarity chains reach ``threshold``;
    ``confirm`` checks each pair that reaches it (only those: never all images)."""
    if not -1.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold is a cosine similarity in -1..1, got {threshold}")
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    first, second = neighbour_pairs(vectors, k=k)
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
    keep = scores >= threshold
    first, second, scores = first[keep], second[keep], scores[keep]
    if confirm is not None and len(first):
        keep = confirm(ids[first], ids[second])
        first, second, scores = first[keep], second[keep], scores[keep]
    parent = np.arange(len(ids))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for row in range(len(ids)):
        members.setdefault(root(row), []).append(row)
    weakest: dict[int, float] = {}
    for a, score in zip(first.tolist(), scores.tolist(), strict=True):
        r = root(a)
        weakest[r] = min(weakest.get(r, 1.0), float(score))
    groups = [
        DuplicateGroup(tuple(sorted(int(ids[row]) for row in rows)), weakest.get(r, 1.0))
        for r, rows in members.items()
        if len(rows) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g.ids), g.ids))


def pair_precision_recall(
    groups: Sequence[Sequence[int]], truth: dict[int, str]
) -> tuple[float, float]:
    """Pairwise precision and recall of predicted groups against true group labels
    (``truth``: id -> true group; ids absent from it belong to no group). Counted from group
    sizes, so a huge wrong group costs no memory."""

    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    predicted = sum(pairs(len(g)) for g in groups)
    sizes: dict[str, int] = {}
    for label in truth.values():
        sizes[label] = sizes.get(label, 0) + 1
    actual = sum(pairs(n) for n in sizes.values())
    hits = 0
    for group in groups:
        together: dict[str, int] = {}
        for image_id in group:
            true_group = truth.get(int(image_id))
            if true_group is not None:
                together[true_group] = together.get(true_group, 0) + 1
        hits += sum(pairs(n) for n in together.values())
    precision = hits / predicted if predicted else 1.0
    recall = hits / actual if actual else 1.0
    return precision, recall
