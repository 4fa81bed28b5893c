"""The query pipeline's stages, on a small index made with the fast ``pixels`` embedder."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import ImageError, InvalidInputError, SearchEngine, SearchFilter
from lookalike.embedders.base import InputSpec
from lookalike.index_options import IndexOptions
from lookalike.query import QueryPipeline, decode_queries, embed_pixels
from lookalike.query.reranking import RerankContext, Shortlist
from lookalike.search_options import SearchOptions


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize((48, 48), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for label in ("a", "b"):
        (root / label).mkdir()
    for i in range(12):
        _image(i).save(root / ("a" if i % 2 else "b") / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def engine(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchEngine]:
    index = tmp_path_factory.mktemp("idx") / "pixels.idx"
    with SearchEngine.create(index, embedder="pixels") as built:
        built.index_folder(photos, options=IndexOptions(workers=0))
        yield built


def test_pipeline_results_equal_engine_search(engine: SearchEngine, photos: Path) -> None:
    queries = [str(p) for p in sorted(photos.rglob("*.png"))[:4]]
    through_pipeline = engine.pipeline.search(queries, SearchOptions(k=3))
    assert through_pipeline == engine.search(queries, k=3)
    decoded = engine.pipeline.decode(queries)
    assert engine.pipeline.search_decoded(decoded, SearchOptions(k=3)) == through_pipeline
    for query, result in zip(queries, through_pipeline, strict=True):
        assert result.query == query and result.matches[0].path == query
        assert [m.rank for m in result.matches] == [1, 2, 3]


def test_a_single_query_is_a_batch_of_one(engine: SearchEngine, photos: Path) -> None:
    paths = [str(p) for p in sorted(photos.rglob("*.png"))[:3]]
    batch = engine.pipeline.search(paths, SearchOptions(k=4))
    alone = [engine.pipeline.search([p], SearchOptions(k=4))[0] for p in paths]
    for b, a in zip(batch, alone, strict=True):
        assert [m.id for m in b.matches] == [m.id for m in a.matches]
        assert [m.score for m in b.matches] == pytest.approx([m.score for m in a.matches])


def test_paths_bytes_and_pil_images_embed_alike(engine: SearchEngine, photos: Path) -> None:
    path = sorted(photos.rglob("*.png"))[0]
    decoded = engine.pipeline.decode([path, path.read_bytes(), Image.open(path)])
    assert decoded.names == (str(path), "<image bytes>", "<PIL image>")
    vectors = engine.pipeline.embed(decoded)
    assert vectors.shape == (3, engine.manifest.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-6)
    np.testing.assert_allclose(vectors[2], vectors[0], atol=1e-6)
    np.testing.assert_allclose(engine.embed([path]), vectors[:1], atol=1e-6)


def test_decode_errors_name_the_query(tmp_path: Path) -> None:
    spec = InputSpec(size=16, crop_fraction=1.0)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        decode_queries([bad], spec)
    with pytest.raises(ImageError, match=r"^upload\.jpg: not an image"):
        decode_queries([b"junk"], spec, names=["upload.jpg"])
    good = io.BytesIO()
    _image(1).save(good, format="PNG")
    with pytest.raises(ImageError, match=r"query 2 of 2 \(<image bytes>\): not an image"):
        decode_queries([good.getvalue(), b"junk"], spec)
    with pytest.raises(ImageError, match=r"missing\.jpg: file not found"):
        decode_queries([tmp_path / "missing.jpg"], spec)
    empty = decode_queries([], spec)
    assert len(empty) == 0 and empty.pixels == ()


def test_embedding_batches_give_the_same_vectors(engine: SearchEngine, photos: Path) -> None:
    decoded = engine.pipeline.decode(sorted(photos.rglob("*.png")))
    whole = embed_pixels(engine.embedder, decoded.pixels)
    small = embed_pixels(engine.embedder, decoded.pixels, batch_size=5)
    np.testing.assert_allclose(small, whole, atol=1e-6)
    assert embed_pixels(engine.embedder, decoded.pixels[:0]).shape == (0, engine.manifest.dim)


class Reverse:
    """A re-ranking stage for the test: worst candidate first, scores negated."""

    def __init__(self) -> None:
        self.calls = 0

    def depth(self, k: int) -> int:
        return k

    def rerank(self, shortlist: Shortlist, context: RerankContext) -> Shortlist:
        self.calls += 1
        queries, scores, ids = shortlist.queries, shortlist.scores, shortlist.ids
        assert queries.shape[0] == scores.shape[0] == ids.shape[0] == len(context.originals)
        return Shortlist(queries, -scores[:, ::-1], ids[:, ::-1])


def test_a_rerank_stage_plugged_in_is_applied(engine: SearchEngine, photos: Path) -> None:
    query = [str(sorted(photos.rglob("*.png"))[0])]
    plain = engine.pipeline.search(query, SearchOptions(k=4))[0]
    stage = Reverse()
    reranked_pipeline = engine.pipeline.with_rerankers(stage)
    assert isinstance(reranked_pipeline, QueryPipeline) and engine.pipeline.rerankers == ()
    reranked = reranked_pipeline.search(query, SearchOptions(k=4))[0]
    assert stage.calls == 1
    assert [m.id for m in reranked.matches] == [m.id for m in plain.matches][::-1]
    assert [m.rank for m in reranked.matches] == [1, 2, 3, 4]
    assert reranked.matches[0].score == pytest.approx(-plain.matches[-1].score)


def test_search_by_id_excludes_itself_with_and_without_filters(engine: SearchEngine) -> None:
    ids = engine.vector_index().ids.tolist()
    first = ids[0]
    label = engine.record(first)[0].label
    assert label is not None
    plain = engine.pipeline.search_ids([first], SearchOptions(k=3))[0]
    assert first not in [m.id for m in plain.matches] and len(plain.matches) == 3
    assert plain == engine.search_by_id(first, k=3)
    where = SearchFilter(labels=frozenset({label}))
    filtered = engine.search_by_id(first, k=20, where=where)
    assert len(filtered.matches) == 5  # six images per label, itself left out
    assert all(m.label == label and m.id != first for m in filtered.matches)
    many = engine.pipeline.search_ids(ids[:3], SearchOptions(k=2))
    assert [r.query for r in many] == [engine.record(i)[0].path for i in ids[:3]]
    assert all(i not in [m.id for m in r.matches] for i, r in zip(ids, many, strict=False))


def test_filters_are_exact_and_k_is_checked(engine: SearchEngine, photos: Path) -> None:
    query = [str(sorted(photos.rglob("*.png"))[0])]
    only_a = engine.pipeline.search(
        query, SearchOptions(k=50, where=SearchFilter(labels=frozenset({"a"})))
    )
    assert len(only_a[0].matches) == 6 and {m.label for m in only_a[0].matches} == {"a"}
    with pytest.raises(InvalidInputError, match="k must be at least 1"):
        engine.pipeline.search(query, SearchOptions(k=0))
    vectors = engine.embed(query)
    assert engine.pipeline.search_vectors(vectors, SearchOptions(k=2)) == engine.search_vectors(
        vectors, k=2
    )


def test_search_options_are_checked_once_where_they_are_made(
    engine: SearchEngine, photos: Path
) -> None:
    with pytest.raises(InvalidInputError, match="k must be at least 1, got -2"):
        SearchOptions(k=-2)
    with pytest.raises(InvalidInputError, match="verify_top must be at least 1, got 0"):
        SearchOptions(verify=True, verify_top=0)
    # verify_top only counts in copy mode, as before the options object: not refused without it.
    query = [str(sorted(photos.rglob("*.png"))[0])]
    assert engine.pipeline.search(query, SearchOptions(k=2, verify_top=0)) == engine.search(
        query, k=2
    )
    # Copy mode by vector needs each query's greyscale image beside the options.
    with pytest.raises(InvalidInputError, match="verify_images"):
        engine.pipeline.search_vectors(engine.embed(query), SearchOptions(verify=True))
    copies = engine.pipeline.search(query, SearchOptions(k=2, verify=True, verify_top=3))
    assert all(m.inliers is not None for m in copies[0].matches)
