"""The HNSW graph against exact search on seeded vectors: recall, adds, removes, save and load,
and the PCA projection whose candidates are re-scored with the full vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.errors import IndexFormatError, InvalidInputError
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import (
    POINTER,
    HnswIndex,
    HnswParams,
    Projection,
    measure_recall,
    read_pointer,
)
from lookalike.vector_table import VectorTable

F32 = npt.NDArray[np.float32]
DIM = 64


def clustered(n: int, *, seed: int, centres: int = 40) -> F32:
    """Unit vectors around ``centres`` random directions: structure like real embeddings."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((centres, DIM))
    points = centre[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, DIM))
    out: F32 = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return out


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.int64], F32, F32]:
    """2,000 stored vectors with ids 1000.., and 200 queries near them (not stored)."""
    vectors = clustered(2000, seed=0)
    ids = np.arange(1000, 3000, dtype=np.int64)
    rng = np.random.default_rng(1)
    near = vectors[rng.choice(2000, 200, replace=False)] + 0.1 * rng.standard_normal((200, DIM))
    queries = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    return ids, vectors, queries


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_recall_against_exact_search(
    data: tuple[npt.NDArray[np.int64], F32, F32], metric: str
) -> None:
    ids, vectors, queries = data
    graph = HnswIndex.build(ids, vectors, metric=metric, params=HnswParams())
    exact = ExactIndex(ids, vectors, metric=metric)
    assert len(graph) == 2000 and graph.ids() == set(ids.tolist()) and not graph.reranks
    scores, found = graph.search(queries, 10)
    exact_scores, truth = exact.search(queries, 10)
    assert scores.shape == found.shape == (200, 10) and found.dtype == np.int64
    assert recall(found, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    # Where the graph found the true neighbour, it scores it as exact search does.
    same = found[:, 0] == truth[:, 0]
    assert same.mean() >= 0.95
    np.testing.assert_allclose(scores[same, 0], exact_scores[same, 0], atol=1e-4)
    measured, n = measure_recall(graph, VectorTable.of(ids, vectors), queries=150)
    assert n == 150 and measured >= 0.95


def test_a_stored_vector_finds_itself_first(data: tuple[npt.NDArray[np.int64], F32, F32]) -> None:
    ids, vectors, _ = data
    graph = HnswIndex.build(ids, vectors, metric="cosine", params=HnswParams())
    scores, found = graph.search(vectors[:50], 1)
    assert (found[:, 0] == ids[:50]).mean() >= 0.98
    np.testing.assert_allclose(scores[found[:, 0] == ids[:50], 0], 1.0, atol=1e-5)


def test_k_beyond_the_collection_pads_and_an_empty_graph_finds_nothing() -> None:
    vectors = clustered(5, seed=2)
    graph = HnswIndex.build(np.arange(5), vectors, metric="cosine", params=HnswParams())
    scores, found = graph.search(vectors[:2], 8)
    assert sorted(found[0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert (found[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    empty = HnswIndex.build(
        np.empty(0, np.int64), np.empty((0, DIM), np.float32), metric="cosine", params=HnswParams()
    )
    scores, found = empty.search(vectors[:1], 3)
    assert len(empty) == 0 and (found == -1).all() and np.isneginf(scores).all()


def test_add_grows_the_graph_and_remove_hides_ids(
    data: tuple[npt.NDArray[np.int64], F32, F32],
) -> None:
    ids, vectors, _ = data
    graph = HnswIndex.build(ids[:500], vectors[:500], metric="cosine", params=HnswParams())
    graph.add(ids[500:1500], vectors[500:1500])  # past the graph's first capacity
    assert len(graph) == 1500
    _, found = graph.search(vectors[1400:1450], 1)
    assert (found[:, 0] == ids[1400:1450]).mean() >= 0.95

    doomed = ids[:1500:3].tolist()
    graph.remove(doomed)
    graph.remove(doomed[:10])  # removing twice is harmless
    assert len(graph) == 1500 - len(doomed) and graph.deleted == set(doomed)
    assert graph.ids() == set(ids[:1500].tolist()) - set(doomed)
    np.testing.assert_array_equal(graph.id_array(), sorted(graph.ids()))
    _, found = graph.search(vectors[:1500:7], 10)
    assert not set(found.ravel().tolist()) & set(doomed)
    kept = ids[:1500][np.isin(ids[:1500], doomed, invert=True)]
    exact = ExactIndex(kept, vectors[:1500][np.isin(ids[:1500], doomed, invert=True)])
    assert recall(found, exact.search(vectors[:1500:7], 10)[1]) >= 0.9
    graph.add(np.empty(0, np.int64), np.empty((0, DIM), np.float32))
    assert len(graph) == 1500 - len(doomed)


def test_save_then_load_gives_the_same_answers(
    data: tuple[npt.NDArray[np.int64], F32, F32], tmp_path: Path
) -> None:
    ids, vectors, queries = data
    params = HnswParams(m=12, ef_construction=80, ef_search=64)
    graph = HnswIndex.build(ids, vectors, metric="cosine", params=params)
    graph.remove([1000, 1001])
    folder = tmp_path / "ann"
    assert read_pointer(folder) is None and HnswIndex.load(folder, metric="cosine") is None
    info = graph.save(folder, recall=0.97, queries=200, dim=DIM)
    assert info.count == 1998 and info.params == params and info.pca_file == ""
    assert read_pointer(folder) == info
    pointer = json.loads((folder / POINTER).read_text())
    assert pointer["file"] == info.file and pointer["recall_at_10"] == 0.97
    loaded = HnswIndex.load(folder, metric="cosine")
    assert loaded is not None
    again, loaded_info = loaded
    assert loaded_info == info and again.deleted == {1000, 1001} and len(again) == 1998
    before, after = graph.search(queries, 10), again.search(queries, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], atol=1e-6)

    # A second save writes new files and removes the old ones; the pointer moves to them.
    newer = again.save(folder, recall=0.96, queries=200, dim=DIM)
    assert newer.file != info.file
    assert {p.name for p in folder.iterdir()} == {POINTER, newer.file, newer.deleted_file}


def test_an_unreadable_pointer_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / POINTER).write_text('{"file": "x.bin"}')
    with pytest.raises(IndexFormatError, match="unreadable ANN pointer"):
        read_pointer(tmp_path)


def test_pca_graph_reranks_candidates_with_the_full_vectors(
    data: tuple[npt.NDArray[np.int64], F32, F32], tmp_path: Path
) -> None:
    ids, vectors, queries = data
    exact = ExactIndex(ids, vectors)
    exact_scores, truth = exact.search(queries, 10)
    params = HnswParams(pca_dim=8, rerank=100)
    graph = HnswIndex.build(ids, vectors, metric="cosine", params=params)
    assert graph.reranks and graph.projection is not None
    assert graph.projection.axes.shape == (DIM, 8)
    scores, found = graph.search(queries, 10)
    reranked = recall(found, truth)
    assert reranked >= 0.95
    # Re-scored: each returned score is the exact cosine of the query and that stored vector.
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    for q, row_ids, row_scores in zip(queries[:20], found[:20], scores[:20], strict=True):
        expected = np.array([by_id[i] @ q for i in row_ids.tolist()], dtype=np.float32)
        np.testing.assert_allclose(row_scores, expected, atol=1e-5)

    # Without re-scoring, the 8-d projection alone ranks worse and scores are not cosines.
    plain = HnswIndex.build(ids, vectors, metric="cosine", params=HnswParams(pca_dim=8, rerank=0))
    assert not plain.reranks
    projected_scores, projected = plain.search(queries, 10)
    assert recall(projected, truth) < reranked
    assert np.abs(projected_scores - exact_scores).max() > 0.01

    # Saved and loaded, the projection comes back; the loaded graph has no vector table.
    info = graph.save(tmp_path / "ann", recall=reranked, queries=200, dim=DIM)
    assert info.pca_file and (tmp_path / "ann" / info.pca_file).is_file()
    loaded = HnswIndex.load(tmp_path / "ann", metric="cosine")
    assert loaded is not None and loaded[0].projection is not None
    np.testing.assert_allclose(loaded[0].projection(queries), graph.projection(queries), atol=1e-6)
    assert not loaded[0].reranks


def test_projection_fit_is_seeded_unit_length_and_whitening_spreads_variance(
    tmp_path: Path,
) -> None:
    vectors = clustered(1000, seed=3)
    first = Projection.fit(vectors, 6)
    second = Projection.fit(vectors, 6)
    np.testing.assert_array_equal(first.axes, second.axes)
    out = first(vectors)
    assert out.shape == (1000, 6) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # Principal axes are orthonormal and ordered by the variance they carry.
    np.testing.assert_allclose(first.axes.T @ first.axes, np.eye(6), atol=1e-4)
    spread = ((vectors - first.mean) @ first.axes).var(axis=0)
    assert (np.diff(spread) <= 1e-6).all()
    whitened = Projection.fit(vectors, 6, whiten=True)
    white_spread = ((vectors - whitened.mean) @ whitened.axes).var(axis=0)
    np.testing.assert_allclose(white_spread, 1.0, rtol=0.05)

    first.save(tmp_path / "pca.npy")
    back = Projection.load(tmp_path / "pca.npy")
    np.testing.assert_array_equal(back.mean, first.mean)
    np.testing.assert_array_equal(back.axes, first.axes)
    with pytest.raises(InvalidInputError, match="more than 64"):
        Projection.fit(vectors, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"m": 2}, "unusable HNSW parameters"),
        ({"m": 32, "ef_construction": 16}, "unusable HNSW parameters"),
        ({"pca_dim": -1}, "PCA dimension"),
        ({"rerank": -5}, "rerank must be"),
        ({"whiten": True}, "whitening needs a PCA projection"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, int | bool], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        HnswParams(**kwargs)  # type: ignore[arg-type]


def test_a_build_refuses_an_unknown_metric_and_mismatched_ids() -> None:
    vectors = np.eye(4, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="metric must be"):
        HnswIndex.build(np.arange(4), vectors, metric="dot", params=HnswParams())
    with pytest.raises(InvalidInputError, match="3 ids, vectors of shape"):
        HnswIndex.build(np.arange(3), vectors, metric="cosine", params=HnswParams())


def test_queries_are_projected_and_searched_one_at_a_time_as_in_a_batch(
    data: tuple[npt.NDArray[np.int64], F32, F32],
) -> None:
    """A single query takes the short roads (one product for the projection, one thread, one
    row's top k); its answers are the batch's answers, scores included."""
    ids, vectors, queries = data
    graph = HnswIndex.build(ids, vectors, metric="cosine", params=HnswParams(pca_dim=8))
    assert graph.projection is not None
    batch = graph.projection(queries)  # 200 rows: the blocked road
    singles = np.concatenate([graph.projection(q[None]) for q in queries])
    np.testing.assert_allclose(singles, batch, atol=1e-5)
    scores, found = graph.search(queries, 10)
    for row, q in enumerate(queries[:50]):
        one_scores, one_found = graph.search(q[None], 10)
        np.testing.assert_array_equal(one_found[0], found[row])
        np.testing.assert_allclose(one_scores[0], scores[row], atol=1e-6)
