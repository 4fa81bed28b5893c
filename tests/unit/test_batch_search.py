"""Searching several requests together gives each what it gets searched alone, and a bad
request fails alone."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.filters import SearchFilter
from lookalike.matches import SearchResult
from lookalike.query.batch_search import SearchRequest, search_requests
from lookalike.query.decoding import DecodedQueries
from lookalike.region import Box, Region
from lookalike.search_options import SearchOptions


def assert_same(together: list[SearchResult], alone: list[SearchResult]) -> None:
    assert len(together) == len(alone)
    for got, want in zip(together, alone, strict=True):
        assert got.query == want.query and got.box == want.box
        assert [m.id for m in got.matches] == [m.id for m in want.matches]
        assert [m.inliers for m in got.matches] == [m.inliers for m in want.matches]
        for a, b in zip(got.matches, want.matches, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_requests_searched_together_match_each_searched_alone(
    fast_gallery_index: Path, gallery: Path
) -> None:
    photos = sorted((gallery / "originals").glob("*.jpg"))[:6]
    with SearchEngine.open(fast_gallery_index) as engine:
        pipeline = engine.pipeline
        plain = SearchOptions(k=5)
        originals = SearchOptions(k=3, where=SearchFilter(labels=frozenset({"originals"})))
        copy_mode = SearchOptions(k=4, verify=True, verify_top=6)
        requests = [
            SearchRequest(pipeline.decode([photos[0]]), plain),
            SearchRequest(pipeline.decode([photos[1]]), originals),
            SearchRequest(pipeline.decode([photos[2], photos[3]]), plain),  # two images
            SearchRequest(pipeline.decode([photos[4]], verify=True), copy_mode),
            SearchRequest(pipeline.decode([Region(photos[5], Box(10, 10, 90, 80))]), plain),
            SearchRequest(pipeline.decode([photos[1]]), originals),
        ]
        outcomes = search_requests(pipeline, requests)
        assert len(outcomes) == len(requests)
        for request, outcome in zip(requests, outcomes, strict=True):
            assert isinstance(outcome, list), outcome
            assert len(outcome) == len(request)
            assert_same(outcome, pipeline.search_decoded(request.decoded, request.options))
    assert outcomes[3][0].matches[0].inliers is not None  # copy mode really verified
    assert outcomes[4][0].box == Box(10, 10, 90, 80)
    assert all(m.label == "originals" for m in outcomes[1][0].matches)


def test_a_failing_request_fails_alone(fast_gallery_index: Path, gallery: Path) -> None:
    photos = sorted(gallery.rglob("*.jpg"))[:3]
    with SearchEngine.open(fast_gallery_index) as engine:
        pipeline = engine.pipeline
        good = SearchOptions(k=3)
        # Grouping by product on an index that has no products: refused, for that request only.
        bad = SearchOptions(k=3, group_by_product=True)
        copy_without_images = SearchOptions(k=3, verify=True)
        requests = [
            SearchRequest(pipeline.decode([photos[0]]), good),
            SearchRequest(pipeline.decode([photos[1]]), bad),
            SearchRequest(pipeline.decode([photos[2]]), copy_without_images),  # no grey kept
            SearchRequest(pipeline.decode([photos[2]]), bad),
            SearchRequest(pipeline.decode([photos[2]]), good),
        ]
        outcomes = search_requests(pipeline, requests)
        for position in (1, 2, 3):
            assert isinstance(outcomes[position], InvalidInputError), outcomes[position]
        assert "product feed" in str(outcomes[1])
        for position in (0, 4):
            outcome = outcomes[position]
            assert isinstance(outcome, list)
            assert_same(outcome, pipeline.search_decoded(requests[position].decoded, good))


def test_the_network_runs_outside_the_searching_lock(
    fast_gallery_index: Path, gallery: Path
) -> None:
    """A server's lock covers the index's stages only: the network (``embed``) runs before it
    is taken, so other batches can be in the network meanwhile; results are unchanged, also
    when the whole batch's network call fails and each request is redone alone."""
    photos = sorted((gallery / "originals").glob("*.jpg"))[:3]
    lock = threading.Lock()
    held_while_embedding: list[bool] = []
    with SearchEngine.open(fast_gallery_index) as engine:
        pipeline = engine.pipeline
        options = SearchOptions(k=4)
        requests = [SearchRequest(pipeline.decode([p]), options) for p in photos]

        def embed(decoded: DecodedQueries) -> npt.NDArray[np.float32]:
            held_while_embedding.append(lock.locked())
            return pipeline.embed(decoded)

        outcomes = search_requests(pipeline, requests, embed=embed, searching=lock)
        assert held_while_embedding == [False]
        assert not lock.locked()
        for request, outcome in zip(requests, outcomes, strict=True):
            assert isinstance(outcome, list)
            assert_same(outcome, pipeline.search_decoded(request.decoded, options))

        def fails_for_batches(decoded: DecodedQueries) -> npt.NDArray[np.float32]:
            if len(decoded) > 1:
                raise RuntimeError("the network ran out of memory")
            return embed(decoded)

        held_while_embedding.clear()
        redone = search_requests(pipeline, requests, embed=fails_for_batches, searching=lock)
        assert held_while_embedding == [False] * len(requests)
        for got, want in zip(redone, outcomes, strict=True):
            assert isinstance(got, list) and isinstance(want, list)
            assert_same(got, want)
