"""The neighbour statistic behind the hubness correction: updated incrementally as images come
and go, equal to a recomputation from scratch, tied to the catalog's state on disk."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.errors import DamagedIndexWarning
from lookalike.indexes.neighbours import NeighbourTable, build_neighbours, update_neighbours
from lookalike.rerank_settings import RerankSettings
from lookalike.store import IndexStore
from tests.conftest import FAST_EMBEDDER

DIM = 3072


def _vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, dim)).astype(np.float32)
    v = centres[rng.integers(0, 8, n)] + rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _assert_same(a: NeighbourTable, b: NeighbourTable) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.neighbours, b.neighbours)
    np.testing.assert_array_equal(a.similarities, b.similarities)
    np.testing.assert_array_equal(a.mean_similarity, b.mean_similarity)


def _from_scratch(engine: SearchEngine, k: int = 10) -> NeighbourTable:
    exact = engine.vector_index()
    return build_neighbours(exact.ids, exact.vectors, k)


def test_updates_equal_a_recomputation_from_scratch() -> None:
    vectors = _vectors(500, 1, dim=48)
    ids = np.arange(500, dtype=np.int64) * 2 + 1
    table = build_neighbours(ids[:300], vectors[:300], 10)
    rng = np.random.default_rng(2)
    for _ in range(3):
        present = np.isin(ids, table.ids)
        gone = rng.choice(np.flatnonzero(present), 25, replace=False)
        new = rng.choice(np.flatnonzero(~present), 40, replace=False)
        keep = np.setdiff1d(np.concatenate([np.flatnonzero(present), new]), gone)
        shuffled = rng.permutation(keep)
        table = update_neighbours(table, ids[shuffled], vectors[shuffled], 10)
        _assert_same(table, build_neighbours(ids[keep], vectors[keep], 10))


def test_tiny_collections_pad_and_grow_exactly() -> None:
    vectors = _vectors(14, 3, dim=16)
    ids = np.arange(14, dtype=np.int64)
    one = build_neighbours(ids[:1], vectors[:1], 10)
    assert one.neighbours.tolist() == [[-1] * 10] and one.mean_similarity.tolist() == [0.0]
    grown = update_neighbours(one, ids, vectors, 10)
    _assert_same(grown, build_neighbours(ids, vectors, 10))
    shrunk = update_neighbours(grown, ids[:4], vectors[:4], 10)
    _assert_same(shrunk, build_neighbours(ids[:4], vectors[:4], 10))
    assert (shrunk.neighbours[:, 3:] == -1).all()


def test_the_writer_keeps_the_saved_statistic_in_step(tmp_path: Path) -> None:
    vectors = _vectors(120, 4)
    settings = RerankSettings(hubness=True)
    index = tmp_path / "idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, reranking=settings) as engine:
        engine.add_vectors([f"a/{i}" for i in range(80)], vectors[:80])
        engine.remove([f"a/{i}" for i in range(0, 80, 7)])
        engine.add_vectors([f"b/{i}" for i in range(40)], vectors[80:])
        saved = engine.collection.neighbours.load()
        assert saved is not None
        _assert_same(saved, _from_scratch(engine))


def test_a_commit_the_statistic_missed_is_detected_and_completed(tmp_path: Path) -> None:
    """A writer killed between its commit and the statistic's file leaves a stale file: readers
    complete it in memory, the next writer saves it."""
    vectors = _vectors(90, 5)
    index = tmp_path / "idx"
    settings = RerankSettings(hubness=True)
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, reranking=settings) as engine:
        engine.add_vectors([f"a/{i}" for i in range(60)], vectors[:60])
        before = engine.collection.neighbours.load()
    store = IndexStore.open(index, writable=True)  # commits behind the statistic's back
    with store.catalog.transaction():
        store.catalog.delete([3, 4])
    from lookalike.catalog_records import ImageEntry

    store.append(vectors[60:], [ImageEntry(f"b/{i}", 0, 0, "", None) for i in range(30)])
    store.close()
    with SearchEngine.open(index) as reader:
        stale = reader.collection.neighbours.load()
        assert stale is not None and before is not None
        _assert_same(stale, before)  # the file is stale...
        _assert_same(reader.collection.neighbour_table(10), _from_scratch(reader))  # ...not used
    with SearchEngine.open(index, writable=True) as writer:
        assert writer.writer.keep_neighbours()
        saved = writer.collection.neighbours.load()
        assert saved is not None
        _assert_same(saved, _from_scratch(writer))


def test_a_damaged_statistic_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    vectors = _vectors(30, 6)
    index = tmp_path / "idx"
    settings = RerankSettings(hubness=True)
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, reranking=settings) as engine:
        engine.add_vectors([f"a/{i}" for i in range(30)], vectors)
    (index / "neighbours.npz").write_bytes(b"PK\x03\x04 not a zip")
    with SearchEngine.open(index) as reader:
        with pytest.warns(DamagedIndexWarning, match="neighbour statistic"):
            table = reader.collection.neighbour_table(10)
        _assert_same(table, _from_scratch(reader))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reader.search_vectors(vectors[:2], k=3, hubness=True)  # cached: no second warning
