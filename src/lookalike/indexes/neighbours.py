"""The neighbour statistic behind the hubness correction: for every stored vector, its k nearest
other stored vectors (ids and cosine similarities, best first).

Kept per item as ids and similarities, not only their mean, so that it is updated exactly as
images come and go (:func:`update_neighbours`): a new image gets its top-k against everything;
an existing image merges the new images into its top-k; an image whose top-k held a removed one
is recomputed. Everything is computed in blocks of rows, so memory stays bounded (a block of
rows times the collection) however big the collection.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lookalike.indexes.base import FloatArray, IdArray

#: Rows scored at once: bounds the (rows x collection) similarity block held in memory (one
#: per thread, at most _MAX_THREADS of them).
ROW_BLOCK = 256
_MAX_THREADS = 16


@dataclass(frozen=True, eq=False)  # arrays: compare them with numpy
class NeighbourTable:
    """``ids`` sorted; row i: ``neighbours[i]`` the k nearest other ids of ``ids[i]``, best
    first (ties by id), ``similarities[i]`` their cosine similarities; rows of a collection of
    k images or fewer are padded with id -1 and similarity -inf."""

    ids: IdArray
    neighbours: IdArray
    similarities: FloatArray

    @property
    def k(self) -> int:
        return int(self.neighbours.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def mean_similarity(self) -> FloatArray:
        """r_x: each row's mean similarity to its neighbours (0 for an image alone)."""
        valid = self.neighbours >= 0
        total = np.where(valid, self.similarities, 0.0).sum(axis=1, dtype=np.float64)
        counts = np.maximum(valid.sum(axis=1), 1)
        out: FloatArray = (total / counts).astype(np.float32)
        return out

    def hubness(self, ids: IdArray) -> FloatArray:
        """r_x for each of ``ids`` (any shape); 0 for ids the table does not hold (-1 slots)."""
        wanted = np.asarray(ids, dtype=np.int64)
        at = np.clip(np.searchsorted(self.ids, wanted), 0, max(len(self.ids) - 1, 0))
        if not len(self.ids):
            return np.zeros(wanted.shape, dtype=np.float32)
        found = self.ids[at] == wanted
        return np.where(found, self.mean_similarity[at], 0.0).astype(np.float32)


def build_neighbours(ids: IdArray, vectors: FloatArray, k: int) -> NeighbourTable:
    """The table of ``vectors`` (unit rows, any id order) from scratch."""
    order = np.argsort(ids, kind="stable")
    ids = np.ascontiguousarray(ids[order], dtype=np.int64)
    vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
    neighbours, similarities = _top_k(ids, vectors, np.arange(len(ids)), k)
    return NeighbourTable(ids, neighbours, similarities)


def update_neighbours(
    table: NeighbourTable, ids: IdArray, vectors: FloatArray, k: int
) -> NeighbourTable:
    """``table`` brought up to the collection (``ids``, ``vectors``, unit rows, any order):
    the same table :func:`build_neighbours` would make, at the cost of what changed."""
    if k != table.k:
        return build_neighbours(ids, vectors, k)
    order = np.argsort(ids, kind="stable")
    ids = np.ascontiguousarray(ids[order], dtype=np.int64)
    vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
    kept = np.isin(table.ids, ids)
    removed = table.ids[~kept]
    added_rows = np.flatnonzero(~np.isin(ids, table.ids))
    if not len(removed) and not len(added_rows):
        return table
    neighbours = np.full((len(ids), k), -1, dtype=np.int64)
    similarities = np.full((len(ids), k), -np.inf, dtype=np.float32)
    old_rows = np.searchsorted(ids, table.ids[kept])
    neighbours[old_rows] = table.neighbours[kept]
    similarities[old_rows] = table.similarities[kept]
    # An image that lost a neighbour is recomputed; the others only meet the new images.
    lost = np.isin(neighbours[old_rows], removed).any(axis=1) if len(removed) else None
    stale = old_rows[lost] if lost is not None else old_rows[:0]
    merging = old_rows[~lost] if lost is not None else old_rows
    if len(added_rows) and len(merging):
        _merge(neighbours, similarities, merging, ids, vectors, added_rows)
    recompute = np.concatenate([stale, added_rows])
    if len(recompute):
        neighbours[recompute], similarities[recompute] = _top_k(ids, vectors, recompute, k)
    return NeighbourTable(ids, neighbours, similarities)


def _top_k(ids: IdArray, vectors: FloatArray, rows: IdArray, k: int) -> tuple[IdArray, FloatArray]:
    """The k nearest other rows of each of ``rows``, against every row, block by block (blocks
    on several threads: numpy's selection runs single-threaded but lets go of the GIL)."""
    neighbours = np.full((len(rows), k), -1, dtype=np.int64)
    similarities = np.full((len(rows), k), -np.inf, dtype=np.float32)

    def one_block(start: int) -> None:
        block = rows[start : start + ROW_BLOCK]
        sims = vectors[block] @ vectors.T
        sims[np.arange(len(block)), block] = -np.inf  # not its own neighbour
        # A few spare candidates, re-scored exactly: near-ties decided alike on every road.
        candidates = _best_columns(sims, k + _SPARE)
        found = np.where(
            np.isfinite(np.take_along_axis(sims, candidates, axis=1)),
            _pair_similarities(vectors, block[:, None], candidates),
            -np.inf,
        )
        found_ids = np.where(np.isfinite(found), ids[candidates], -1)
        ordered_ids, ordered = _ordered(found_ids, found, k)
        neighbours[start : start + len(block)] = ordered_ids
        similarities[start : start + len(block)] = ordered

    starts = range(0, len(rows), ROW_BLOCK)
    if len(starts) <= 1:
        for start in starts:
            one_block(start)
    else:
        workers = min(len(starts), os.cpu_count() or 1, _MAX_THREADS)
        with ThreadPoolExecutor(workers, thread_name_prefix="neighbours") as pool:
            for done in [pool.submit(one_block, start) for start in starts]:
                done.result()
    return neighbours, similarities


def _merge(
    neighbours: IdArray,
    similarities: FloatArray,
    rows: IdArray,
    ids: IdArray,
    vectors: FloatArray,
    added: IdArray,
) -> None:
    """Merge the ``added`` rows into the neighbour lists of ``rows``, in place."""
    k = neighbours.shape[1]
    new_vectors = vectors[added]
    for start in range(0, len(rows), ROW_BLOCK * 16):
        block = rows[start : start + ROW_BLOCK * 16]
        sims = vectors[block] @ new_vectors.T
        # Only new images that may enter a list are re-scored exactly (see _pair_similarities),
        # and only the lists they may enter are merged: usually few of them.
        entering = sims >= similarities[block][:, -1:] - _MARGIN
        touched = np.flatnonzero(entering.any(axis=1))
        if not len(touched):
            continue
        block, sims, entering = block[touched], sims[touched], entering[touched]
        at_row, at_col = np.nonzero(entering)
        exact = np.full(sims.shape, -np.inf, dtype=np.float32)
        exact[at_row, at_col] = _pair_similarities(vectors, block[at_row], added[at_col])
        all_ids = np.concatenate([neighbours[block], np.broadcast_to(ids[added], sims.shape)], 1)
        all_sims = np.concatenate([similarities[block], exact], axis=1)
        neighbours[block], similarities[block] = _ordered(all_ids, all_sims, k)


#: Spare candidates per row re-scored exactly, and how far below a list's last similarity a
#: new image is still re-scored: float32 products of different shapes differ by ~1e-7.
_SPARE = 4
_MARGIN = 1e-4


def _pair_similarities(vectors: FloatArray, a: IdArray, b: IdArray) -> FloatArray:
    """cos(vectors[a], vectors[b]) elementwise (a and b broadcast), in float64 rounded to
    float32: the same value for a pair whichever block or product it came up in, so that an
    updated table equals one built from scratch."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    left = vectors[a.ravel()].astype(np.float64)
    right = vectors[b.ravel()].astype(np.float64)
    out: FloatArray = np.einsum("ij,ij->i", left, right).astype(np.float32).reshape(a.shape)
    return out


def _best_columns(sims: FloatArray, k: int) -> IdArray:
    if sims.shape[1] <= k:
        return np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def _ordered(cand_ids: IdArray, cand_sims: FloatArray, k: int) -> tuple[IdArray, FloatArray]:
    """The best k of each row's candidates, by similarity then id, padded to k columns."""
    order = np.lexsort((cand_ids, -cand_sims.astype(np.float64)), axis=1)[:, :k]
    out_ids = np.take_along_axis(cand_ids, order, axis=1)
    out_sims = np.take_along_axis(cand_sims, order, axis=1).astype(np.float32)
    out_ids = np.where(np.isfinite(out_sims), out_ids, -1)
    if out_ids.shape[1] < k:
        pad = k - out_ids.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_sims = np.pad(out_sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_ids, out_sims


__all__ = ["NeighbourTable", "build_neighbours", "update_neighbours"]
