"""Held-out splits and the retrieval score used to judge a model during training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError

IntArray = npt.NDArray[np.int64]


def split_indices(
    n: int,
    fraction: float,
    *,
    seed: int,
    labels: Sequence[int] | npt.NDArray[np.int64] | None = None,
) -> tuple[IntArray, IntArray]:
    """(train, held-out) row indices; with ``labels``, each class is split in that proportion."""
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else _by_class(np.asarray(labels))
    train, held = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        cut = max(1, round(len(rows) * fraction)) if len(rows) > 1 else 0
        held.append(rows[:cut])
        train.append(rows[cut:])
    train_rows, held_rows = np.sort(np.concatenate(train)), np.sort(np.concatenate(held))
    if len(train_rows) == 0 or len(held_rows) == 0:
        raise InvalidInputError(f"{n} images are too few to hold some out for validation")
    return train_rows.astype(np.int64), held_rows.astype(np.int64)


def _by_class(labels: npt.NDArray[np.int64]) -> list[IntArray]:
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def mean_average_precision(
    vectors: npt.NDArray[np.float32], labels: Sequence[int] | npt.NDArray[np.int64]
) -> float:
    """mAP of cosine retrieval where each row is a query against all the others and rows of the
    same label are relevant (queries with no other row of their label are left out)."""
    y = np.asarray(labels)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    total, counted = 0.0, 0
    for start in range(0, len(y), 512):
        sims = unit[start : start + 512] @ unit.T
        rows = np.arange(start, min(start + 512, len(y)))
        sims[rows - start, rows] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]
        relevant = y[order] == y[rows][:, None]
        hits = np.cumsum(relevant, axis=1)
        n_relevant = relevant.sum(axis=1)
        precision = hits / np.arange(1, relevant.shape[1] + 1)
        ap = (precision * relevant).sum(axis=1) / np.maximum(n_relevant, 1)
        total += float(ap[n_relevant > 0].sum())
        counted += int(np.count_nonzero(n_relevant > 0))
    return total / counted if counted else 0.0
