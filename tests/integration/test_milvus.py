"""Serving from a Milvus collection (milvus-lite here, a cluster in production) gives the same
results as the built-in exact index on the same vectors, and keeps in step with the catalog."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike import SearchEngine
from lookalike.errors import IndexFormatError, InvalidInputError
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import HnswParams
from lookalike.indexes.milvus import MilvusIndex

MISSING = "is not installed: pip install -e '.[milvus]'"
pytest.importorskip("pymilvus", reason=f"pymilvus {MISSING}")
pytest.importorskip("milvus_lite", reason=f"milvus-lite {MISSING}")

pytestmark = pytest.mark.heavy

Gallery = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def gallery_vectors(gallery_index: Path) -> Gallery:
    """(ids, vectors) of the 218 real photos of the gallery index, in id order."""
    with SearchEngine.open(gallery_index) as engine:
        ids = engine.vector_index().ids.copy()
        _, vectors = engine.export_vectors()
    assert len(ids) == len(vectors) == 218
    return ids, vectors


def queries_from(vectors: np.ndarray, n: int = 50, *, seed: int = 0) -> np.ndarray:
    """Half stored vectors, half stored vectors nudged off the collection (unit length)."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), size=n, replace=False)]
    nudged = picked[n // 2 :] + 0.05 * rng.standard_normal(picked[n // 2 :].shape)
    picked[n // 2 :] = nudged / np.linalg.norm(nudged, axis=1, keepdims=True)
    return picked.astype(np.float32)


def unit_vectors(n: int, dim: int, *, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_same_ids_and_scores_as_exact_search(
    gallery_vectors: Gallery, tmp_path: Path, metric: str
) -> None:
    ids, vectors = gallery_vectors
    queries = queries_from(vectors)
    with MilvusIndex(str(tmp_path / "m.db"), "gallery", dim=1280, metric=metric) as milvus:
        report = milvus.sync_from(ids, vectors)
        assert (report.upserted, report.removed, report.unchanged) == (218, 0, 0)
        assert len(milvus) == 218 and milvus.ids() == set(ids.tolist())
        scores, found = milvus.search(queries, 10)
    expected_scores, expected_ids = ExactIndex(ids, vectors, metric=metric).search(queries, 10)
    np.testing.assert_array_equal(found, expected_ids)
    if metric == "cosine":
        np.testing.assert_allclose(scores, expected_scores, atol=1e-4)
    else:  # ExactIndex's float32 sqrt(|q|^2 + |v|^2 - 2 q.v) is ~5e-4 off at distance 0
        np.testing.assert_allclose(scores**2, expected_scores**2, atol=1e-4)
        far = expected_scores < -0.05
        np.testing.assert_allclose(scores[far], expected_scores[far], atol=1e-4)
    assert (found[:25, 0] == expected_ids[:25, 0]).all()  # a stored vector finds itself first
    best = 1.0 if metric == "cosine" else 0.0
    np.testing.assert_allclose(scores[:25, 0], best, atol=1e-4)


def test_hnsw_index_finds_what_exact_search_finds(gallery_vectors: Gallery, tmp_path: Path) -> None:
    ids, vectors = gallery_vectors
    queries = queries_from(vectors, seed=1)
    params = HnswParams(m=16, ef_construction=100, ef_search=64)
    with MilvusIndex(str(tmp_path / "m.db"), "ann", dim=1280, hnsw=params) as milvus:
        milvus.sync_from(ids, vectors)
        assert milvus.index_type == "HNSW"
        _, found = milvus.search(queries, 10)
    _, truth = ExactIndex(ids, vectors).search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95


def test_k_larger_than_the_collection_pads_with_missing(tmp_path: Path) -> None:
    vectors = unit_vectors(5, 16, seed=2)
    with MilvusIndex(str(tmp_path / "m.db"), "small", dim=16) as milvus:
        scores, found = milvus.search(vectors[:2], 3)  # empty collection
        assert (found == -1).all() and np.isneginf(scores).all()
        milvus.upsert(np.arange(10, 15), vectors)
        scores, found = milvus.search(vectors[:2], 8)
    assert scores.shape == found.shape == (2, 8)
    assert (found[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert sorted(found[0, :5].tolist()) == [10, 11, 12, 13, 14]
    assert found[0, 0] == 10 and found[1, 0] == 11
    assert (np.diff(scores[:, :5], axis=1) <= 0).all()


def test_upsert_replaces_and_remove_deletes(tmp_path: Path) -> None:
    vectors = unit_vectors(12, 16, seed=3)
    with MilvusIndex(str(tmp_path / "m.db"), "edits", dim=16) as milvus:
        milvus.upsert(np.arange(10), vectors[:10])
        assert len(milvus) == 10
        milvus.upsert(np.array([3]), vectors[10:11])  # id 3 now holds another vector
        assert len(milvus) == 10
        scores, found = milvus.search(vectors[10:11], 1)
        assert found[0, 0] == 3 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        _, found = milvus.search(vectors[3:4], 10)
        assert 3 not in found[0, :1]
        milvus.remove([3, 7, 999])  # an id not stored is ignored
        assert milvus.ids() == {0, 1, 2, 4, 5, 6, 8, 9} and len(milvus) == 8
        _, found = milvus.search(vectors, 10)
        assert not {3, 7} & set(found.ravel().tolist())
        with pytest.raises(InvalidInputError, match="unique"):
            milvus.upsert(np.array([1, 1]), vectors[:2])
        with pytest.raises(InvalidInputError, match="shape"):
            milvus.upsert(np.array([1]), vectors[:1, :8])
        with pytest.raises(InvalidInputError, match="queries"):
            milvus.search(vectors[:, :8], 3)


def test_sync_from_makes_the_collection_hold_exactly_the_catalog(
    gallery_vectors: Gallery, tmp_path: Path
) -> None:
    ids, vectors = gallery_vectors
    rng = np.random.default_rng(4)
    with MilvusIndex(str(tmp_path / "m.db"), "synced", dim=1280) as milvus:
        milvus.sync_from(ids[:150], vectors[:150])
        # the catalog moves on: 30 images dropped, 20 re-embedded, 68 new
        kept = np.sort(rng.choice(150, size=120, replace=False))
        changed = rng.choice(kept, size=20, replace=False)
        new_vectors = vectors.copy()
        new_vectors[changed] = unit_vectors(20, 1280, seed=5)
        rows = np.concatenate([kept, np.arange(150, 218)])
        report = milvus.sync_from(ids[rows], new_vectors[rows])
        assert (report.upserted, report.removed, report.unchanged) == (20 + 68, 30, 100)
        assert milvus.ids() == set(ids[rows].tolist()) and len(milvus) == len(rows)
        queries = queries_from(new_vectors[rows], seed=6)
        scores, found = milvus.search(queries, 10)
        again = milvus.sync_from(ids[rows], new_vectors[rows])
        assert (again.upserted, again.removed, again.unchanged) == (0, 0, len(rows))
    expected_scores, expected_ids = ExactIndex(ids[rows], new_vectors[rows]).search(queries, 10)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-4)


def test_reopening_checks_dimension_and_metric(tmp_path: Path) -> None:
    uri = str(tmp_path / "m.db")
    with MilvusIndex(uri, "kept", dim=16) as milvus:
        milvus.upsert(np.arange(4), unit_vectors(4, 16, seed=7))
    with MilvusIndex(uri, "kept", dim=16) as milvus:
        assert len(milvus) == 4 and milvus.index_type == "FLAT"
    with pytest.raises(IndexFormatError, match=r"'kept'.*32-d.*dim=16"):
        MilvusIndex(uri, "kept", dim=32)
    with pytest.raises(IndexFormatError, match=r"'kept'.*metric COSINE"):
        MilvusIndex(uri, "kept", dim=16, metric="euclidean")
    with pytest.raises(InvalidInputError, match="FLAT index; omit hnsw"):
        MilvusIndex(uri, "kept", dim=16, hnsw=HnswParams())


def test_bad_arguments_and_unreachable_servers_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "m.db"
    with pytest.raises(InvalidInputError, match=r"cannot open Milvus at .*no-such-folder.*\.db"):
        MilvusIndex(str(missing), "c", dim=8)
    with pytest.raises(InvalidInputError, match="http://host:19530"):
        MilvusIndex("not-a-uri", "c", dim=8)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvalidInputError, match=f"cannot open Milvus at 'http://127.0.0.1:{port}'"):
        MilvusIndex(f"http://127.0.0.1:{port}", "c", dim=8)
    uri = str(tmp_path / "m.db")
    with pytest.raises(InvalidInputError, match="collection must be"):
        MilvusIndex(uri, "has-dash", dim=8)
    with pytest.raises(InvalidInputError, match="dim must be"):
        MilvusIndex(uri, "c", dim=0)
    with pytest.raises(InvalidInputError, match="metric must be"):
        MilvusIndex(uri, "c", dim=8, metric="manhattan")
    with pytest.raises(InvalidInputError, match="no PCA"):
        MilvusIndex(uri, "c", dim=8, hnsw=HnswParams(pca_dim=64))


def test_import_lookalike_does_not_import_pymilvus() -> None:
    code = (
        "import sys, lookalike, lookalike.indexes.milvus; "
        "assert 'pymilvus' not in sys.modules and 'milvus_lite' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
