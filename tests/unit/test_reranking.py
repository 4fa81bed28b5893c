"""Query-time re-ranking stages (query expansion, hubness correction) through the real query
pipeline, on indexes of constructed vectors (the fast ``pixels`` embedder's 3072-d space)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike import InvalidInputError, SearchEngine, SearchFilter
from lookalike.query import default_rerankers
from lookalike.rerank_settings import LEGACY_RERANKING, RerankOverride, RerankSettings
from tests.conftest import FAST_EMBEDDER

DIM = 3072
BOTH = RerankSettings(expansion=True, hubness=True)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random unit vectors in the dimensions the constructed vectors leave free (>= 8)."""
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v[:, :8] = 0.0
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _engine(tmp_path: Path, vectors: np.ndarray, **create: object) -> SearchEngine:
    engine = SearchEngine.create(tmp_path / "idx", embedder=FAST_EMBEDDER, **create)  # type: ignore[arg-type]
    labels = ["even" if i % 2 == 0 else "odd" for i in range(len(vectors))]
    engine.add_vectors([f"v/{i:03d}" for i in range(len(vectors))], vectors, labels=labels)
    return engine


def _ids(matches: tuple[object, ...]) -> list[int]:
    return [m.id for m in matches]  # type: ignore[attr-defined]


def test_query_expansion_moves_a_near_neighbour_of_the_top_result_up(tmp_path: Path) -> None:
    # A and A2 (two views of one thing) are the query's best results; B is a further view of
    # it, a little less similar to the query than C, which has nothing to do with A.
    e0, e1, e2 = _axis(0), _axis(1), _axis(2)
    a, a2 = _unit(0.9 * e0 + 0.436 * e1), _unit(0.88 * e0 + 0.475 * e1)
    b, c = _unit(0.7 * e0 + 0.714 * e1), _unit(0.75 * e0 + 0.66 * e2)
    background = _noise(np.random.default_rng(0), 30)
    vectors = np.vstack([a, a2, b, c, background])
    with _engine(tmp_path, vectors) as engine:
        query = e0[None, :]
        plain = engine.search_vectors(query, k=4)[0]
        expanded = engine.search_vectors(query, k=4, expansion=True)[0]
    a_id, a2_id, b_id, c_id = _ids(plain)[0], _ids(plain)[1], 3, 4
    assert _ids(plain) == [a_id, a2_id, c_id, b_id]
    assert _ids(expanded) == [a_id, a2_id, b_id, c_id]
    # Scores stay the cosine similarity to the user's own query.
    by_id = {m.id: m.score for m in expanded}
    assert by_id[b_id] == pytest.approx(float(b @ e0), abs=1e-5)
    assert by_id[c_id] == pytest.approx(float(c @ e0), abs=1e-5)


def _hub_collection() -> tuple[np.ndarray, np.ndarray, int, int]:
    """40 items sharing a common direction, the hub (that direction itself: close to all of
    them), and T, the query's true match, a little less similar to it than the hub is."""
    rng = np.random.default_rng(7)
    common, private = _axis(0), _axis(1)
    items = 0.6 * common + 0.8 * _noise(rng, 40)
    target = _unit(private + 1.34 * _noise(rng, 1)[0])
    vectors = np.vstack([items, common, target]).astype(np.float32)
    query = _unit(0.55 * common + 0.835 * private)
    return vectors, query, 41, 42  # ids are 1-based positions


def test_hubness_correction_demotes_a_hub_and_keeps_copies_first(tmp_path: Path) -> None:
    vectors, query, hub, target = _hub_collection()
    with _engine(tmp_path, vectors) as engine:
        plain = engine.search_vectors(query[None, :], k=5)[0]
        corrected = engine.search_vectors(query[None, :], k=5, hubness=True)[0]
        assert _ids(plain)[:2] == [hub, target]
        assert _ids(corrected)[0] == target and _ids(corrected).index(hub) > 0
        assert {m.id: m.score for m in corrected}[hub] == pytest.approx(plain[0].score)
        # Every stored image, as a query, still finds itself first: copies are never lost.
        stored = engine.vector_index()
        found = engine.search_vectors(stored.vectors, k=3, hubness=True, expansion=True)
        assert [row[0].id for row in found] == stored.ids.tolist()


def test_filters_and_searches_by_id_keep_working_with_the_stages_on(tmp_path: Path) -> None:
    vectors, query, hub, target = _hub_collection()
    with _engine(tmp_path, vectors, reranking=BOTH) as engine:
        odd = SearchFilter(labels=frozenset({"odd"}))
        (matches,) = engine.search_vectors(query[None, :], k=6, where=odd)
        assert matches and all(m.label == "odd" for m in matches)
        for image_id in (hub, target, 5):
            result = engine.search_by_id(image_id, k=6, where=odd)
            assert image_id not in _ids(result.matches)
            assert len(result.matches) == 6 and all(m.label == "odd" for m in result.matches)
            assert [m.rank for m in result.matches] == [1, 2, 3, 4, 5, 6]
        unfiltered = engine.search_by_id(target, k=41)
        assert target not in _ids(unfiltered.matches) and len(unfiltered.matches) == 41


def test_an_index_records_its_stages_and_searches_may_override_them(tmp_path: Path) -> None:
    vectors, query, hub, target = _hub_collection()
    with _engine(tmp_path, vectors, reranking=RerankSettings(hubness=True)) as engine:
        assert engine.info().reranking["hubness"] is True
        assert len(default_rerankers(engine.manifest)) == 1
        assert engine.search_vectors(query[None, :], k=1)[0][0].id == target
        assert engine.search_vectors(query[None, :], k=1, hubness=False)[0][0].id == hub
        assert engine.collection.neighbours.exists()  # computed as the images were added
    with SearchEngine.open(tmp_path / "idx") as reopened:
        assert reopened.manifest.reranking == RerankSettings(hubness=True)
    with pytest.raises(InvalidInputError, match="cosine"):
        SearchEngine.create(tmp_path / "e.idx", embedder=FAST_EMBEDDER, metric="euclidean",
                            reranking=BOTH)  # fmt: skip


def test_an_old_manifest_without_settings_answers_exactly_as_before(tmp_path: Path) -> None:
    vectors, query, _, _ = _hub_collection()
    with _engine(tmp_path, vectors) as engine:
        before = engine.search_vectors(np.vstack([query, vectors[:5]]), k=8)
    manifest = tmp_path / "idx" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["reranking"] = BOTH.to_json()
    manifest.write_text(json.dumps(data))
    with SearchEngine.open(tmp_path / "idx") as engine:
        assert engine.manifest.reranking == BOTH  # recorded settings are honoured...
    del data["reranking"]
    manifest.write_text(json.dumps(data))
    with SearchEngine.open(tmp_path / "idx") as engine:
        assert engine.manifest.reranking == LEGACY_RERANKING  # ...a missing one means all off
        assert default_rerankers(engine.manifest) == ()
        assert engine.search_vectors(np.vstack([query, vectors[:5]]), k=8) == before


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="expansion_n"):
        RerankSettings(expansion_n=0)
    with pytest.raises(InvalidInputError, match="unknown reranking setting 'qe'"):
        RerankSettings.from_json({"qe": True})
    assert RerankOverride(hubness=True).apply(LEGACY_RERANKING) == RerankSettings(hubness=True)


def test_switching_hubness_on_later_computes_the_statistic(tmp_path: Path) -> None:
    vectors, query, hub, target = _hub_collection()
    with _engine(tmp_path, vectors) as engine:
        assert not engine.collection.neighbours.exists()  # not kept while nothing uses it
        assert engine.set_reranking(hubness=True) == RerankSettings(hubness=True)
        assert engine.collection.neighbours.exists()
        assert engine.search_vectors(query[None, :], k=1)[0][0].id == target
        engine.set_reranking(hubness=False)
        assert engine.search_vectors(query[None, :], k=1)[0][0].id == hub


def test_a_big_index_without_the_statistic_refuses_the_correction_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike.indexes import neighbour_file

    vectors, query, _, _ = _hub_collection()
    monkeypatch.setattr(neighbour_file, "BUILD_WHILE_SEARCHING", 10)
    with _engine(tmp_path, vectors) as engine:
        with pytest.raises(InvalidInputError, match="--hubness"):
            engine.search_vectors(query[None, :], k=3, hubness=True)
        engine.set_reranking(hubness=True)  # the writer builds it whatever the size
        assert len(engine.search_vectors(query[None, :], k=3)[0]) == 3
