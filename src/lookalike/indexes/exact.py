"""Exact (brute-force) search with one BLAS matrix product per batch of queries (per block of
stored vectors when they are compact: float16 and int8 are scored in float32 blocks, never
upcast whole)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from lookalike.errors import InvalidInputError
from lookalike.indexes.base import (
    FloatArray,
    IdArray,
    check_metric,
    check_rows,
    empty_results,
    euclidean_score,
)
from lookalike.vector_codec import SCORE_BLOCK, VectorCodec
from lookalike.vector_table import VectorTable

#: Queries scored at once; bounds the (queries x gallery) score matrix held in memory.
_QUERY_BLOCK = 256
#: ... and fewer in a big gallery: at most this many scores at once (64 MB of float32, about
#: four times that with the top-k's temporaries), so that a batch of queries against ten
#: million vectors does not need tens of gigabytes.
_SCORE_CELLS = 16 * 1024 * 1024
#: Up to this many queries, compact vectors are scored with one BLAS thread: their many small
#: products (one per block) cost several times more when BLAS threads wait on each other
#: (measured: one query, 100,000 int8 vectors, 1,024-row blocks on a loaded 2-core machine).
_FEW_QUERIES = 16
#: With full vectors kept, this many candidates beyond k (at least 2k) are re-scored with them.
_RESCORE_EXTRA = 50


class ExactIndex:
    """Scores every vector for every query. The reference for approximate indexes.

    ``vectors`` are float32, or stored by ``codec`` (float16, int8): then they stay compact in
    memory and are scored block by block. ``full`` (id -> float32 vectors, e.g. the float32
    segments an index keeps with ``keep_float32``) re-scores the best compact candidates
    exactly, so the scores and the order of the results are float32's."""

    def __init__(
        self,
        ids: IdArray,
        vectors: npt.NDArray[Any],
        *,
        metric: str = "cosine",
        codec: VectorCodec | None = None,
        full: Callable[[IdArray], FloatArray] | None = None,
    ) -> None:
        check_metric(metric)
        check_rows(ids, vectors)
        self.metric = metric
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.codec = codec or VectorCodec("float32")
        self._full = full
        self.stored = np.ascontiguousarray(vectors, dtype=self.codec.storage)
        self._sq_norms: FloatArray = np.concatenate(
            [
                np.einsum("ij,ij->i", block, block)
                for block in map(self.codec.decode, self._blocks())
            ]
            or [np.zeros(0, dtype=np.float32)]
        )

    @property
    def vectors(self) -> FloatArray:
        """Every vector as float32: the stored array itself when float32, else a new decoded
        copy, or the full vectors (what bulk readers, a graph build or the neighbour statistic,
        work on)."""
        if self._full is not None:
            return self._full(self.ids)
        return self.codec.decode(self.stored)

    def rows(self, rows: npt.NDArray[np.intp]) -> FloatArray:
        """The float32 vectors at the given storage positions."""
        if self._full is not None:
            return self._full(self.ids[rows])
        return self.codec.decode(self.stored[rows])

    @property
    def dim(self) -> int:
        return int(self.stored.shape[1])

    def _blocks(self) -> list[npt.NDArray[Any]]:
        """The stored vectors in blocks of SCORE_BLOCK rows (one block when float32)."""
        if self.codec.dtype == "float32":
            return [self.stored]
        return [self.stored[i : i + SCORE_BLOCK] for i in range(0, len(self.stored), SCORE_BLOCK)]

    def __len__(self) -> int:
        return len(self.ids)

    def search(
        self, queries: FloatArray, k: int, *, allowed: npt.NDArray[np.bool_] | None = None
    ) -> tuple[FloatArray, IdArray]:
        """Top-k (scores, ids) per query, best first; short rows padded with -inf and -1.
        ``allowed`` (one flag per stored vector, in storage order) restricts the candidates."""
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidInputError(f"queries must have shape (n, {self.dim}), got {queries.shape}")
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = empty_results(len(queries), k)
        kk = min(k, len(self))
        if kk == 0:
            return scores, ids
        per_block = max(1, min(_QUERY_BLOCK, _SCORE_CELLS // len(self)))
        for start in range(0, len(queries), per_block):
            block = queries[start : start + per_block]
            sims = self._scores(block)
            if allowed is not None:
                sims[:, ~allowed] = -np.inf
            if self._full is not None:
                done = slice(start, start + len(block))
                scores[done, :kk], ids[done, :kk] = self._rescored(block, sims, kk)
                continue
            top = _top_k(sims, kk, self.ids)
            found = np.take_along_axis(sims, top, axis=1)
            real = np.isfinite(found)
            scores[start : start + len(block), :kk] = np.where(real, found, -np.inf)
            ids[start : start + len(block), :kk] = np.where(real, self.ids[top], -1)
        return scores, ids

    def _rescored(self, block: FloatArray, sims: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """The best ``k`` of each query's top compact candidates, scored with the full
        vectors."""
        assert self._full is not None
        depth = min(len(self), max(2 * k, k + _RESCORE_EXTRA))
        top = _top_k(sims, depth, self.ids)
        found = np.take_along_axis(sims, top, axis=1)
        out, out_ids = empty_results(len(block), k)
        for row in range(len(block)):
            candidates = self.ids[top[row][np.isfinite(found[row])]]
            n = min(k, len(candidates))
            if n:
                exact = similarity(block[row : row + 1], self._full(candidates), self.metric)
                best_scores, best_ids = best(exact, n, candidates)
                out[row, :n], out_ids[row, :n] = best_scores[0], best_ids[0]
        return out, out_ids

    def _scores(self, block: FloatArray) -> FloatArray:
        if self.codec.dtype == "float32":
            return similarity(block, self.stored, self.metric, self._sq_norms)
        dots = self.codec.dots(block)
        sims = np.empty((len(block), len(self.stored)), dtype=np.float32)
        start = 0
        with _one_blas_thread(len(block) <= _FEW_QUERIES):
            for part in self._blocks():
                sims[:, start : start + len(part)] = dots(part)
                start += len(part)
        if self.metric == "cosine":
            return sims
        q_sq = np.einsum("ij,ij->i", block, block)[:, None]
        distance = np.sqrt(np.maximum(q_sq + self._sq_norms[None, :] - 2.0 * sims, 0.0))
        return euclidean_score(distance.astype(np.float32))


#: Rows :func:`search_table` reads and decodes at a time (84 MB of float32 at 1280-d).
TABLE_BLOCK = 16_384


def search_table(
    table: VectorTable, queries: FloatArray, k: int, *, metric: str
) -> tuple[FloatArray, IdArray]:
    """Exact top-k (scores, ids) of ``queries`` over every vector of ``table``, read from its
    memory-mapped segments and decoded a block of rows at a time, so no copy of the collection
    is held in memory (ten million int8 vectors are 12 GiB). Ordered as :meth:`ExactIndex.search`
    orders them: best first, equal scores by id; short rows padded with -inf and -1."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, ids = empty_results(len(queries), k)
    for start in range(0, len(table), TABLE_BLOCK):
        block = slice(start, start + TABLE_BLOCK)
        block_ids = table.ids[block]
        sims = similarity(queries, table.rows(block), metric)
        block_scores, block_found = best(sims, min(k, len(block_ids)), block_ids)
        merged_scores = np.concatenate([scores, block_scores], axis=1)
        merged_ids = np.concatenate([ids, block_found], axis=1)
        order = np.lexsort((merged_ids, -merged_scores), axis=1)[:, :k]
        scores = np.take_along_axis(merged_scores, order, axis=1)
        ids = np.take_along_axis(merged_ids, order, axis=1)
    return scores, ids


@contextmanager
def _one_blas_thread(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    with _blas().limit(limits=1, user_api="blas"):
        yield


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def similarity(
    queries: FloatArray, vectors: FloatArray, metric: str, sq_norms: FloatArray | None = None
) -> FloatArray:
    """Scores of every vector for every query, (queries, vectors): higher is more similar."""
    dots: FloatArray = queries @ vectors.T
    if metric == "cosine":
        return dots
    norms = np.einsum("ij,ij->i", vectors, vectors) if sq_norms is None else sq_norms
    q_sq = np.einsum("ij,ij->i", queries, queries)[:, None]
    distance = np.sqrt(np.maximum(q_sq + norms[None, :] - 2.0 * dots, 0.0))
    return euclidean_score(distance.astype(np.float32))


def _top_k_row(row: FloatArray, k: int, ids: IdArray) -> npt.NDArray[np.intp]:
    """:func:`_top_k` of one row (a single query: the common case, without the per-row
    index arrays ``take_along_axis`` builds)."""
    top = np.argpartition(-row, k - 1)[:k]
    top = top[np.lexsort((ids[top], -row[top]))]
    threshold = row[top[-1]]
    if int(np.count_nonzero(row >= threshold)) > k:  # rare: ties at the boundary
        candidates = np.flatnonzero(row >= threshold)
        top = candidates[np.lexsort((ids[candidates], -row[candidates]))[:k]]
    return top


def best(sims: FloatArray, k: int, ids: IdArray) -> tuple[FloatArray, IdArray]:
    """The k best (scores, ids) of each row of ``sims`` (columns named by ``ids``), best first,
    equal scores ordered by id; k must not exceed the number of columns."""
    top = _top_k(sims, k, ids)
    if len(sims) == 1:
        return sims[:, top[0]], ids[top]
    return np.take_along_axis(sims, top, axis=1), ids[top]


def _top_k(sims: FloatArray, k: int, ids: IdArray) -> npt.NDArray[np.intp]:
    """Column positions of the k best scores per row, ordered by score then by id, so results
    never depend on storage order, even when equal scores straddle the k-th place."""
    n, width = sims.shape
    if n == 1 and k < width:
        return _top_k_row(sims[0], k, ids)[None, :]
    if k < width:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(width), (n, k)).copy()
    top_scores = np.take_along_axis(sims, top, axis=1)
    order = np.lexsort((ids[top], -top_scores), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    if k < width:
        threshold = np.take_along_axis(sims, top[:, -1:], axis=1)
        crowded = np.flatnonzero((sims >= threshold).sum(axis=1) > k)
        for row in crowded:  # rare: ties at the boundary; settle them by id
            candidates = np.flatnonzero(sims[row] >= threshold[row, 0])
            ranked = np.lexsort((ids[candidates], -sims[row, candidates]))
            top[row] = candidates[ranked[:k]]
    return top
