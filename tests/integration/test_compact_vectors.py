"""Compact vectors (float16, int8) on real photo embeddings: searches agree with float32,
every reader gets float32 back, and the manifest, info, verify and compaction know the dtype."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lookalike import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.layout import IndexLayout
from lookalike.store import IndexStore
from lookalike.verification import verify
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER
from tests.helpers import run_cli

DTYPES = ("float32", "float16", "int8")
#: Paths given to exact copies of the first few vectors, so duplicates have something to find.
TWINS = 4


@pytest.fixture(scope="module")
def photo_vectors(fast_gallery_index: Path) -> tuple[list[str], np.ndarray]:
    """The pixel embeddings of the gallery's 218 real photos, plus exact twins of a few."""
    with SearchEngine.open(fast_gallery_index) as engine:
        paths, vectors = engine.export_vectors()
    twins = [f"twins/{Path(p).name}" for p in paths[:TWINS]]
    return paths + twins, np.concatenate([vectors, vectors[:TWINS]])


@pytest.fixture(scope="module")
def indexes(
    photo_vectors: tuple[list[str], np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One index per dtype holding the same vectors, committed in two batches (int8 ranges
    are learned from the first, a seeded sample of the collection; the second may clip)."""
    paths, vectors = photo_vectors
    order = np.random.default_rng(3).permutation(len(paths))
    paths, vectors = [paths[i] for i in order], vectors[order]
    root = tmp_path_factory.mktemp("compact")
    made = {}
    for dtype in DTYPES:
        directory = root / f"{dtype}.idx"
        with SearchEngine.create(directory, embedder=FAST_EMBEDDER, vector_dtype=dtype) as engine:
            engine.add_vectors(paths[:120], vectors[:120])
            engine.add_vectors(paths[120:], vectors[120:])
        made[dtype] = directory
    directory = root / "int8-kept.idx"
    with SearchEngine.create(
        directory, embedder=FAST_EMBEDDER, vector_dtype="int8", keep_float32=True
    ) as engine:
        engine.add_vectors(paths[:120], vectors[:120])
        engine.add_vectors(paths[120:], vectors[120:])
    made["int8-kept"] = directory
    return made


def _search(directory: Path, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    with SearchEngine.open(directory) as engine:
        results = engine.search_vectors(queries, k=k)
    ids = np.array([[m.id for m in row] for row in results])
    scores = np.array([[m.score for m in row] for row in results])
    return ids, scores


@pytest.mark.parametrize(
    ("dtype", "score_tol", "min_overlap"), [("float16", 2e-3, 0.99), ("int8", 0.02, 0.9)]
)
def test_compact_search_matches_float32_top_k(
    indexes: dict[str, Path],
    photo_vectors: tuple[list[str], np.ndarray],
    dtype: str,
    score_tol: float,
    min_overlap: float,
) -> None:
    queries = photo_vectors[1][:200:5]
    truth_ids, truth_scores = _search(indexes["float32"], queries, 10)
    ids, scores = _search(indexes[dtype], queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth_ids, ids, strict=True)])
    assert overlap >= min_overlap
    assert (ids[:, 0] == truth_ids[:, 0]).mean() >= 0.95
    # The scores of the same pair differ only by the storage error.
    for row in range(len(queries)):
        common = set(truth_ids[row]) & set(ids[row])
        for image_id in common:
            a = truth_scores[row][list(truth_ids[row]).index(image_id)]
            b = scores[row][list(ids[row]).index(image_id)]
            assert abs(a - b) <= score_tol


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-6), ("float16", 1e-3), ("int8", 0.02)])
def test_every_reader_gets_float32_close_to_what_was_added(
    indexes: dict[str, Path], photo_vectors: tuple[list[str], np.ndarray], dtype: str, tol: float
) -> None:
    paths, vectors = photo_vectors
    with SearchEngine.open(indexes[dtype]) as engine:
        out_paths, out = engine.export_vectors()
        by_id = engine.collection.vectors_for([1, 2, 3])
        exact = engine.vector_index()
    assert out.dtype == np.float32 and by_id.dtype == np.float32
    added = dict(zip(paths, vectors, strict=True))
    assert sorted(out_paths) == sorted(paths)
    assert np.abs(out - np.array([added[p] for p in out_paths])).max() <= tol
    np.testing.assert_array_equal(by_id, out[:3])
    assert exact.stored.dtype == np.dtype(dtype)  # compact in memory, not upcast


def test_manifest_info_and_files_show_the_dtype(indexes: dict[str, Path]) -> None:
    sizes = {}
    for dtype in DTYPES:
        directory = indexes[dtype]
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["vector_dtype"] == dtype
        with SearchEngine.open(directory) as engine:
            assert engine.info().vector_dtype == dtype
            assert engine.info().to_json()["vector_dtype"] == dtype
        segments = sorted((directory / "segments").glob("*.npy"))
        assert {str(np.load(p, mmap_mode="r").dtype) for p in segments} == {dtype}
        sizes[dtype] = sum(p.stat().st_size for p in segments)
        assert (directory / IndexLayout.QUANTISER).exists() == (dtype == "int8")
    settings = ServeSettings(index=indexes["int8"])
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").json()["vector_dtype"] == "int8"
    assert sizes["float16"] < 0.51 * sizes["float32"]
    assert sizes["int8"] < 0.26 * sizes["float32"]


def test_an_index_written_before_the_field_reads_as_float32(
    indexes: dict[str, Path], tmp_path: Path
) -> None:
    old = tmp_path / "old.idx"
    shutil.copytree(indexes["float32"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["vector_dtype"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with SearchEngine.open(old) as engine:
        assert engine.manifest.vector_dtype == "float32"
        assert engine.info().vector_dtype == "float32"
        assert len(engine.search_vectors(engine.collection.vectors_for([1]), k=3)[0]) == 3


def test_bad_or_changed_dtype_is_refused_with_the_fix(
    indexes: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="float32, float16, int8, got 'int4'"):
        SearchEngine.create(tmp_path / "new.idx", embedder=FAST_EMBEDDER, vector_dtype="int4")
    assert not (tmp_path / "new.idx" / "manifest.json").exists()
    with pytest.raises(InvalidInputError, match="stores its vectors as int8, not float16"):
        SearchEngine.open_or_create(indexes["int8"], vector_dtype="float16")
    with SearchEngine.open_or_create(indexes["int8"], vector_dtype="int8") as engine:
        assert engine.manifest.vector_dtype == "int8"


def test_graph_duplicates_and_neighbours_work_on_int8(
    indexes: dict[str, Path], tmp_path: Path
) -> None:
    results = {}
    for dtype in ("float32", "int8"):
        directory = tmp_path / f"{dtype}.idx"
        shutil.copytree(indexes[dtype], directory)
        with SearchEngine.open(directory, writable=True) as engine:
            info = engine.sync_ann(pca_dim=0)
            queries = engine.collection.vectors_for(list(range(1, 60, 3)))
            graph = engine.ann_index().search(queries, 5)[1]
            exact = engine.vector_index().search(queries, 5)[1]
            groups = engine.duplicates(threshold=0.999)
            neighbours = engine.collection.neighbour_table(5)
        assert info.recall_at_10 >= 0.95
        assert (graph[:, 0] == exact[:, 0]).all()
        results[dtype] = (
            sorted(sorted(r.path for r in group) for group in groups),
            neighbours.neighbours[:, 0],
            neighbours.mean_similarity,
        )
    twins = [group for group in results["float32"][0] if group[1].startswith("twins/")]
    assert len(twins) == TWINS
    # int8 scores are off by up to ~0.002: groups are those of float32, give or take a pair
    # whose float32 similarity is that close to the threshold.
    assert all(group in results["int8"][0] for group in results["float32"][0])
    extra = [g for g in results["int8"][0] if g not in results["float32"][0]]
    with SearchEngine.open(indexes["float32"]) as engine:
        for first, second in extra:
            ids = [engine.collection.record_by_path(p).id for p in (first, second)]
            a, b = engine.collection.vectors_for(ids)
            assert float(a @ b) > 0.999 - 0.002
    # The hubness statistic: nearest other image the same, mean similarities close.
    assert (results["int8"][1] == results["float32"][1]).mean() >= 0.95
    assert np.abs(results["int8"][2] - results["float32"][2]).max() <= 0.02


def test_compaction_and_verify_on_an_int8_index(
    indexes: dict[str, Path], photo_vectors: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    directory = tmp_path / "int8.idx"
    shutil.copytree(indexes["int8"], directory)
    paths = photo_vectors[0]
    with SearchEngine.open(directory, writable=True) as engine:
        engine.remove(paths[:10])
        before_paths, before = engine.export_vectors()
        queries = before[:20]
        before_results = engine.search_vectors(queries, k=5)
    store = IndexStore.open(directory, writable=True)
    try:
        assert len(store.catalog.segments()) == 2
        store.compact()
        assert len(store.catalog.segments()) == 1
    finally:
        store.close()
    report = verify(directory)
    assert report.problems == ()
    with SearchEngine.open(directory) as engine:
        after_paths, after = engine.export_vectors()
        after_results = engine.search_vectors(queries, k=5)
    assert after_paths == before_paths
    np.testing.assert_array_equal(after, before)  # codes copied, not re-quantised
    assert [[m.path for m in r] for r in after_results] == [
        [m.path for m in r] for r in before_results
    ]
    # Without its ranges, int8 codes mean nothing: verify names the file.
    (directory / IndexLayout.QUANTISER).unlink()
    damaged = verify(directory)
    assert damaged.problems and "quantiser.npy" in damaged.problems[0].message


def test_cli_index_info_and_refusal(small_photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "cli.idx"
    made = run_cli(
        "index",
        small_photos,
        "--index",
        index,
        "--embedder",
        FAST_EMBEDDER,
        "--vector-dtype",
        "float16",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    shown = run_cli("info", "--index", index, "--json")
    assert json.loads(shown.stdout)["vector_dtype"] == "float16"
    changed = run_cli("index", small_photos, "--index", index, "--vector-dtype", "int8")
    assert changed.returncode != 0
    assert "stores its vectors as float16, not int8" in " ".join(changed.stderr.split())
    bad = run_cli("index", small_photos, "--index", tmp_path / "b.idx", "--vector-dtype", "f8")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "float32, float16, int8" in " ".join(bad.stderr.split())


def test_keep_float32_holds_int8_in_memory_and_answers_like_float32(
    indexes: dict[str, Path], photo_vectors: tuple[list[str], np.ndarray]
) -> None:
    directory = indexes["int8-kept"]
    queries = photo_vectors[1][:200:5]
    truth_ids, truth_scores = _search(indexes["float32"], queries, 10)
    ids, scores = _search(directory, queries, 10)
    # float32's results, up to the order of ties (products of other shapes differ by ~1e-7).
    np.testing.assert_allclose(scores, truth_scores, atol=1e-5)
    assert (ids == truth_ids).mean() > 0.95
    for row in range(len(queries)):
        want = dict(zip(truth_ids[row].tolist(), truth_scores[row].tolist(), strict=True))
        got = dict(zip(ids[row].tolist(), scores[row].tolist(), strict=True))
        assert all(abs(got[i] - want[i]) <= 1e-5 for i in got.keys() & want.keys())
        assert all(
            abs(want.get(i, got.get(i, 0)) - truth_scores[row][-1]) <= 1e-5
            for i in got.keys() ^ want.keys()
        )
    with SearchEngine.open(directory) as engine:
        assert engine.vector_index().stored.dtype == np.int8
        info = engine.info()
    assert (info.vector_dtype, info.keep_float32) == ("int8", True)
    segments = list((directory / "segments").glob("*.npy"))
    assert {str(np.load(p, mmap_mode="r").dtype) for p in segments} == {"float32"}
    assert (directory / IndexLayout.QUANTISER).exists()
    with pytest.raises(InvalidInputError, match="stores its vectors as int8 keeping float32"):
        SearchEngine.open_or_create(directory, keep_float32=False)


def test_keep_float32_needs_a_compact_dtype(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="needs vector_dtype float16 or int8"):
        SearchEngine.create(tmp_path / "x.idx", embedder=FAST_EMBEDDER, keep_float32=True)


def test_a_reader_opened_before_the_first_int8_commit_reads_it(
    photo_vectors: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    paths, vectors = photo_vectors
    directory = tmp_path / "late.idx"
    SearchEngine.create(directory, embedder=FAST_EMBEDDER, vector_dtype="int8").close()
    with SearchEngine.open(directory) as reader:
        assert reader.search_vectors(vectors[:1], k=3) == [()]
        with SearchEngine.open(directory, writable=True) as writer:
            writer.add_vectors(paths[:50], vectors[:50])
        found = reader.search_vectors(vectors[:1], k=3)[0]
    assert found[0].path == paths[0] and found[0].score > 0.99


@pytest.mark.heavy
def test_the_graph_of_int8_vectors_is_built_without_a_float32_copy_of_them(
    tmp_path: Path,
) -> None:
    """Compact vectors exist so that collections whose float32 vectors do not fit in memory
    can be searched: building their graph must not decode them all at once (it did, and a
    2,000,000-vector int8 build was killed by the OOM killer on a 24 GiB machine)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n, dim = 150_000, 1280  # lite0's vectors
    # near a 16-d subspace, so that a 16-d projection keeps the neighbours
    basis = rng.normal(size=(16, dim)).astype(np.float32)
    vectors = rng.normal(size=(n, 16)).astype(np.float32) @ basis
    vectors += 0.05 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engine = SearchEngine.create(tmp_path / "i8.idx", index_type="hnsw", vector_dtype="int8")
    for start in range(0, n, 50_000):
        engine.add_vectors(
            [f"v{i}" for i in range(start, start + 50_000)], vectors[start : start + 50_000]
        )
    queries = vectors[:20].copy()
    del vectors
    float32_copy = n * dim * 4
    tracemalloc.start()
    try:
        info = engine.sync_ann(pca_dim=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the int8 codes themselves (a quarter) and a few blocks; before: the copy and more
    assert peak < 0.7 * float32_copy, f"peak {peak / 1e6:.0f} MB of {float32_copy / 1e6:.0f}"
    assert info.count == n and info.recall_at_10 > 0.9
    found = engine.search_vectors(queries, k=1, expansion=False, hubness=False)
    assert [m[0].path for m in found] == [f"v{i}" for i in range(20)]  # each finds itself
    engine.close()
