"""Approximate search (HNSW) behind the same API: recall measured after every build, recorded in
the index; incremental adds and removes without a rebuild; an optional PCA projection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike import IndexOptions, SearchEngine
from lookalike.engine import ANN_THRESHOLD
from lookalike.evaluation.copies import CopySet
from tests.conftest import FAST_EMBEDDER
from tests.helpers import run_cli

#: PCA tests use the 512-d colour histogram: fitting PCA to 3,072-d pixels takes many seconds.
PCA_EMBEDDER = "colour-histogram"


@pytest.fixture()
def photos(copy_set: CopySet, tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    shutil.copytree(copy_set.root, root)
    return root


def test_hnsw_finds_what_exact_search_finds(
    photos: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    with (
        SearchEngine.create(tmp_path / "ann.idx", embedder=FAST_EMBEDDER, index_type="hnsw") as ann,
        SearchEngine.create(
            tmp_path / "exact.idx", embedder=FAST_EMBEDDER, index_type="exact"
        ) as exact,
    ):
        ann.index_folder(photos)
        exact.index_folder(photos)
        assert ann.search_index_type() == "hnsw" and exact.search_index_type() == "exact"
        info = ann.info()
        assert info.search_index == "hnsw" and info.ann_recall_at_10 is not None
        assert info.ann_recall_at_10 >= 0.95
        queries = [str(p.copy) for p in copy_set.copies]
        approximate = ann.search(queries, k=5)
        reference = exact.search(queries, k=5)
    for a, r in zip(approximate, reference, strict=True):
        assert [m.path for m in a.matches][:3] == [m.path for m in r.matches][:3]
        assert a.matches[0].score == pytest.approx(r.matches[0].score, abs=1e-4)


def test_graph_is_updated_not_rebuilt_and_readers_see_commits(photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "live.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER, index_type="hnsw") as writer:
        writer.index_folder(photos)
    pointer = json.loads((index / "ann" / "ann.json").read_text())
    assert pointer["count"] == 80
    reader = SearchEngine.open(index)
    try:
        before = reader.search([str(photos / "originals" / "rocket.jpg")], k=1)[0].matches[0]
        assert before.path.endswith("rocket.jpg")
        # Another process removes a photo and adds one: the reader follows without a rebuild.
        (photos / "originals" / "rocket.jpg").unlink()
        shutil.copy(photos / "copies" / "chelsea__hflip.jpg", photos / "new-cat.jpg")
        (photos / "copies" / "chelsea__hflip.jpg").unlink()
        with SearchEngine.open(index, writable=True) as writer:
            report = writer.index_folder(photos)
        assert report.removed == 1 and report.renamed == 1
        after = json.loads((index / "ann" / "ann.json").read_text())
        assert after["count"] == 79 and after["file"] != pointer["file"]
        assert after["recall_at_10"] >= 0.95
        deleted = np.load(index / "ann" / after["deleted_file"], allow_pickle=False)
        assert len(deleted) == 1  # the graph kept its nodes and marked one deleted
        paths = [m.path for m in reader.search([str(photos / "new-cat.jpg")], k=80)[0].matches]
        assert not any(p.endswith("rocket.jpg") and "originals" in p for p in paths)
        assert paths[0].endswith("new-cat.jpg")
    finally:
        reader.close()


def test_pca_projection_and_cli(photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "pca.idx"
    result = run_cli(
        "index", photos, "--index", index, "--embedder", PCA_EMBEDDER,
        "--index-type", "hnsw", "--pca", "32", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pointer = json.loads((index / "ann" / "ann.json").read_text())
    assert pointer["params"]["pca_dim"] == 32 and pointer["pca_file"]
    info = json.loads(run_cli("info", "--index", index, "--json").stdout)
    assert info["search_index"] == "hnsw" and info["ann_recall_at_10"] >= 0.9
    found = json.loads(
        run_cli(
            "search",
            photos / "copies" / "coffee__jpeg15.jpg",
            "--index",
            index,
            "--json",
            "-k",
            "2",
        ).stdout
    )
    assert Path(found["matches"][1]["path"]).stem.startswith("coffee")
    bad = run_cli("index", photos, "--index", index, "--index-type", "ivf")
    assert bad.returncode == 2 and "index type must be one of" in bad.stderr


def test_auto_is_exact_for_small_collections(photos: Path, tmp_path: Path) -> None:
    with SearchEngine.create(tmp_path / "auto.idx", embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos, options=IndexOptions(workers=0))
        assert engine.manifest.index_type == "auto"
        assert len(engine) < ANN_THRESHOLD and engine.search_index_type() == "exact"
        assert not (tmp_path / "auto.idx" / "ann").exists()


def test_pca_graph_rescores_its_candidates_with_the_full_vectors(
    photos: Path, copy_set: CopySet, tmp_path: Path
) -> None:
    index = tmp_path / "rerank.idx"
    with SearchEngine.create(index, embedder=PCA_EMBEDDER, index_type="hnsw") as engine:
        engine.index_folder(photos, options=IndexOptions(pca_dim=16))
        queries = engine.embed([str(p.copy) for p in copy_set.copies[:12]])
        exact_scores, exact_ids = engine.vector_index().search(queries, 10)
        graph = engine.ann_index()
        assert graph.reranks and graph.params.rerank == 80
        scores, ids = graph.search(queries, 10)
        # 80 candidates (the default) of 80 images: every one is re-scored, so the answer is
        # exact.
        np.testing.assert_array_equal(ids, exact_ids)
        np.testing.assert_allclose(scores, exact_scores, atol=1e-5)

        # --rerank 0 keeps the graph (no rebuild) and scores in the 16-d projection instead.
        pointer = json.loads((index / "ann" / "ann.json").read_text())
        engine.index_folder(photos, options=IndexOptions(rerank=0))
        updated = json.loads((index / "ann" / "ann.json").read_text())
        assert updated["params"]["rerank"] == 0 and updated["pca_file"] != ""
        assert updated["deleted_file"] != pointer["deleted_file"]  # saved with the new setting
        projected = engine.ann_index().search(queries, 10)[0]
        assert not engine.ann_index().reranks
        assert np.abs(projected - exact_scores).max() > 0.01

        # Whitening is a new projection: the graph is rebuilt on it and still finds each photo.
        engine.index_folder(photos, options=IndexOptions(pca_dim=16, whiten=True, rerank=40))
        whitened = json.loads((index / "ann" / "ann.json").read_text())
        assert whitened["params"]["whiten"] is True and whitened["file"] != updated["file"]
        assert engine.info().ann_params == whitened["params"]
        results = engine.search([str(p.copy) for p in copy_set.copies[:12]], k=1)
        expected = [p.copy.name for p in copy_set.copies[:12]]
        assert [Path(r.matches[0].path).name for r in results] == expected


def test_vectors_added_through_the_api_are_searched_exactly_until_a_graph_is_built(
    photos: Path, tmp_path: Path
) -> None:
    with SearchEngine.create(
        tmp_path / "src.idx", embedder=FAST_EMBEDDER, index_type="exact"
    ) as source:
        source.index_folder(photos, options=IndexOptions(workers=0))
        paths, vectors = source.export_vectors()
        expected = [[m.path for m in r] for r in source.search_vectors(vectors[:3], k=5)]
    with SearchEngine.create(
        tmp_path / "api.idx", embedder=FAST_EMBEDDER, index_type="hnsw"
    ) as engine:
        engine.add_vectors(paths, vectors)
        assert engine.search_index_type() == "exact"  # no graph yet: exact, never an error
        assert [[m.path for m in r] for r in engine.search_vectors(vectors[:3], k=5)] == expected
        info = engine.sync_ann()
        assert info.count == len(paths) and engine.search_index_type() == "hnsw"
        found = engine.search_vectors(vectors[:3], k=5)
        assert [r[0].path for r in found] == [r[0] for r in expected]
