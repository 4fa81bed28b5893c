"""ExactIndex against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.errors import InvalidInputError
from lookalike.indexes import exact as exact_module
from lookalike.indexes.exact import ExactIndex, search_table
from lookalike.vector_codec import VectorCodec
from lookalike.vector_table import VectorTable

DIM = 16
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def _unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> F32:
    vectors = rng.standard_normal((n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def _gallery(seed: int = 0, n: int = 500) -> tuple[I64, F32]:
    """Unit vectors under scrambled, non-contiguous ids (so ids are not row numbers)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 7 + 1000)
    return ids, _unit_rows(rng, n)


def _reference(
    ids: I64, vectors: F32, queries: F32, k: int, metric: str
) -> tuple[npt.NDArray[np.float64], I64]:
    """Full sort in float64: best score first, then lowest id."""
    v = vectors.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        scores = q @ v.T
    else:
        scores = -np.linalg.norm(q[:, None, :] - v[None, :, :], axis=2)
    out_scores = np.empty((len(q), k))
    out_ids = np.empty((len(q), k), dtype=np.int64)
    for row in range(len(q)):
        order = np.lexsort((ids, -scores[row]))[:k]
        out_scores[row] = scores[row, order]
        out_ids[row] = ids[order]
    return out_scores, out_ids


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_brute_force_reference(metric: str) -> None:
    ids, vectors = _gallery()
    queries = _unit_rows(np.random.default_rng(1), 40)
    index = ExactIndex(ids, vectors, metric=metric)
    assert len(index) == 500
    assert index.dim == DIM
    scores, found = index.search(queries, 10)
    assert scores.shape == found.shape == (40, 10)
    assert scores.dtype == np.float32
    assert found.dtype == np.int64
    ref_scores, ref_ids = _reference(ids, vectors, queries, 10, metric)
    assert np.array_equal(found, ref_ids)
    assert np.allclose(scores, ref_scores, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_cosine_scores_are_dot_products_of_unit_vectors() -> None:
    ids, vectors = _gallery(seed=3, n=50)
    index = ExactIndex(ids, vectors)
    scores, found = index.search(vectors[:5], 1)
    # Each vector is its own best match with similarity 1.
    assert np.array_equal(found[:, 0], ids[:5])
    assert np.allclose(scores[:, 0], 1.0, atol=1e-6)


def test_euclidean_scores_are_negated_distances_in_ascending_order() -> None:
    rng = np.random.default_rng(5)
    ids = np.arange(200, dtype=np.int64)
    vectors = (rng.standard_normal((200, DIM)) * 3.0).astype(np.float32)  # not unit length
    queries = (rng.standard_normal((7, DIM)) * 3.0).astype(np.float32)
    scores, found = ExactIndex(ids, vectors, metric="euclidean").search(queries, 200)
    for row in range(len(queries)):
        distances = np.linalg.norm(vectors.astype(np.float64) - queries[row], axis=1)
        assert np.allclose(-scores[row], distances[found[row]], rtol=1e-5, atol=1e-4)
        assert np.array_equal(found[row], np.argsort(distances, kind="stable"))
    assert (scores <= 0).all()


def test_euclidean_distance_to_itself_is_zero() -> None:
    vectors = _unit_rows(np.random.default_rng(6), 30)
    index = ExactIndex(np.arange(30, dtype=np.int64), vectors, metric="euclidean")
    scores, found = index.search(vectors, 2)
    assert np.array_equal(found[:, 0], np.arange(30))
    # q.q + v.v - 2 q.v in float32 may come out slightly negative: clamped, never NaN.
    assert np.isfinite(scores).all()
    assert np.abs(scores[:, 0]).max() < 2e-3
    assert (scores[:, 1] < -0.1).all()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_k_larger_than_gallery_pads(metric: str) -> None:
    ids, vectors = _gallery(seed=2, n=6)
    queries = _unit_rows(np.random.default_rng(9), 3)
    scores, found = ExactIndex(ids, vectors, metric=metric).search(queries, 10)
    assert scores.shape == found.shape == (3, 10)
    assert (found[:, 6:] == -1).all()
    assert np.isneginf(scores[:, 6:]).all()
    assert np.isfinite(scores[:, :6]).all()
    for row in range(3):
        assert sorted(found[row, :6].tolist()) == sorted(ids.tolist())
    ref_scores, ref_ids = _reference(ids, vectors, queries, 6, metric)
    assert np.array_equal(found[:, :6], ref_ids)
    assert np.allclose(scores[:, :6], ref_scores, atol=1e-5)


def test_empty_index_returns_nothing() -> None:
    index = ExactIndex(np.empty(0, dtype=np.int64), np.empty((0, DIM), dtype=np.float32))
    assert len(index) == 0
    assert index.dim == DIM
    scores, found = index.search(_unit_rows(np.random.default_rng(0), 4), 3)
    assert found.shape == (4, 3)
    assert (found == -1).all()
    assert np.isneginf(scores).all()


def test_ties_are_ordered_by_id() -> None:
    rng = np.random.default_rng(11)
    vectors = _unit_rows(rng, 30)
    same = np.zeros(DIM, dtype=np.float32)
    same[0] = 1.0
    tied_rows = [3, 8, 12, 20, 27]
    vectors[tied_rows] = same
    ids = rng.permutation(np.arange(100, 130, dtype=np.int64))
    query = same[None, :]
    for metric in ("cosine", "euclidean"):
        scores, found = ExactIndex(ids, vectors, metric=metric).search(query, 30)
        assert sorted(found[0, :5].tolist()) == found[0, :5].tolist()
        assert set(found[0, :5].tolist()) == set(ids[tied_rows].tolist())
        assert len(set(scores[0, :5].tolist())) == 1


def test_ties_at_the_cut_keep_the_lowest_ids() -> None:
    rng = np.random.default_rng(12)
    same = np.zeros((50, DIM), dtype=np.float32)
    same[:, 0] = 1.0
    ids = rng.permutation(np.arange(50, dtype=np.int64))
    scores, found = ExactIndex(ids, same).search(same[:1], 5)
    assert np.allclose(scores, 1.0)
    assert found[0].tolist() == [0, 1, 2, 3, 4]


def test_large_batch_equals_one_by_one() -> None:
    ids, vectors = _gallery(seed=4, n=300)
    queries = _unit_rows(np.random.default_rng(8), 600)  # over the 256-query block, unaligned
    for metric in ("cosine", "euclidean"):
        index = ExactIndex(ids, vectors, metric=metric)
        scores, found = index.search(queries, 5)
        assert found.shape == (600, 5)
        for row in range(600):
            one_scores, one_found = index.search(queries[row : row + 1], 5)
            assert np.array_equal(one_found[0], found[row])
            assert np.allclose(one_scores[0], scores[row], atol=1e-5)


def test_wrong_query_shape_is_refused() -> None:
    ids, vectors = _gallery(n=10)
    index = ExactIndex(ids, vectors)
    with pytest.raises(InvalidInputError, match=f"\\(n, {DIM}\\)"):
        index.search(np.zeros((2, DIM + 1), dtype=np.float32), 3)
    with pytest.raises(InvalidInputError):
        index.search(np.zeros(DIM, dtype=np.float32), 3)


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_refused(k: int) -> None:
    ids, vectors = _gallery(n=10)
    with pytest.raises(InvalidInputError, match="k must be at least 1"):
        ExactIndex(ids, vectors).search(vectors[:1], k)


def test_bad_construction_is_refused() -> None:
    ids, vectors = _gallery(n=10)
    with pytest.raises(InvalidInputError, match="metric"):
        ExactIndex(ids, vectors, metric="manhattan")
    with pytest.raises(InvalidInputError):
        ExactIndex(ids[:9], vectors)
    with pytest.raises(InvalidInputError):
        ExactIndex(ids, vectors[:, 0])
    assert issubclass(InvalidInputError, ValueError)


def test_float64_inputs_are_accepted() -> None:
    ids, vectors = _gallery(seed=7, n=40)
    queries = _unit_rows(np.random.default_rng(3), 5)
    index32 = ExactIndex(ids, vectors)
    index64 = ExactIndex(ids, vectors.astype(np.float64))
    s32, f32 = index32.search(queries, 4)
    s64, f64 = index64.search(queries.astype(np.float64), 4)
    assert np.array_equal(f32, f64)
    assert np.allclose(s32, s64)


def test_one_row_top_k_orders_ties_by_id_as_a_batch_does() -> None:
    """The single-query road of ``best`` settles equal scores at the k-th place by id, like
    the batch road, and agrees with it row by row on seeded random scores."""
    from lookalike.indexes.exact import best

    ids = np.array([40, 7, 33, 12, 5, 90], dtype=np.int64)
    tied = np.array([[0.5, 0.9, 0.5, 0.5, 0.1, 0.5]], dtype=np.float32)
    scores, found = best(tied, 3, ids)
    assert found.tolist() == [[7, 12, 33]]
    np.testing.assert_allclose(scores, [[0.9, 0.5, 0.5]])
    rng = np.random.default_rng(5)
    sims = rng.integers(0, 6, size=(30, 40)).astype(np.float32)  # many ties
    many = rng.permutation(1000)[:40].astype(np.int64)
    batch_scores, batch_ids = best(sims, 7, many)
    for row in range(30):
        row_scores, row_ids = best(sims[row : row + 1], 7, many)
        np.testing.assert_array_equal(row_ids[0], batch_ids[row])
        np.testing.assert_array_equal(row_scores[0], batch_scores[row])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_table_search_streams_blocks_and_equals_exact_search(
    metric: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """search_table reads a table a block at a time (7 blocks of 80 rows here, the last one
    short) and gives what ExactIndex gives on the same decoded vectors, ties included."""
    monkeypatch.setattr(exact_module, "TABLE_BLOCK", 80)
    ids, vectors = _gallery(seed=3)
    vectors[[5, 90, 300]] = vectors[200]  # equal scores straddling blocks: ordered by id
    codec = VectorCodec("float32")
    if dtype == "int8":
        codec = VectorCodec("int8").learn(vectors)
    stored = codec.encode(vectors)
    order = np.argsort(ids)
    table = VectorTable(ids[order], np.zeros(len(ids), np.int64), order, [stored], codec.decode)
    queries = np.concatenate([_unit_rows(np.random.default_rng(4), 30), vectors[200:201]])
    decoded = codec.decode(stored)
    for k in (1, 10, 600):
        scores, found = search_table(table, queries, k, metric=metric)
        want_scores, want = ExactIndex(ids, decoded, metric=metric).search(queries, k)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        if k < 600:
            assert np.array_equal(found, want)
        else:  # every vector: the same ones, in an order that may differ where two scores
            # differ in the last bit only (the products are computed in other block shapes)
            assert [sorted(row) for row in found.tolist()] == [sorted(row) for row in want.tolist()]
    assert found[-1, :4].tolist() == sorted(ids[[5, 90, 200, 300]].tolist())
    assert (found[:, 500:] == -1).all() and np.isneginf(scores[:, 500:]).all()
