"""The headline behaviour: an edited copy of a photo finds its original at rank 1."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lookalike import SearchEngine, SearchResult
from lookalike.evaluation.copies import CopySet

pytestmark = pytest.mark.heavy


def test_edited_copies_retrieve_their_original_at_rank_1(
    copy_set: CopySet, gallery_index: Path
) -> None:
    with SearchEngine.open(gallery_index) as engine:
        assert len(engine) == 8 + 210
        results = engine.search([str(pair.copy) for pair in copy_set.copies], k=5)
    _assert_rank_1(copy_set, results)


def test_int8_embedder_finds_the_originals_too(
    copy_set: CopySet, gallery: Path, tmp_path: Path
) -> None:
    with SearchEngine.create(tmp_path / "int8.idx", embedder="lite0-int8") as engine:
        engine.index_folder(gallery)
        assert engine.manifest.embedder.name == "efficientnet-lite0-int8"
        results = engine.search([str(pair.copy) for pair in copy_set.copies], k=5)
    _assert_rank_1(copy_set, results)


def _assert_rank_1(copy_set: CopySet, results: list[SearchResult]) -> None:
    misses = Counter()
    for pair, result in zip(copy_set.copies, results, strict=True):
        if Path(result.matches[0].path).name != pair.original.name:
            misses[pair.edit] += 1
    hits = len(copy_set.copies) - sum(misses.values())
    rate = hits / len(copy_set.copies)
    print(
        f"\ncopy detection: {hits}/{len(copy_set.copies)} copies at rank 1 "
        f"({rate:.1%}); misses by edit: {dict(misses)}"
    )
    assert len(copy_set.copies) == 72
    assert rate >= 0.95, misses


def test_scores_are_higher_for_copies_than_for_distractors(
    copy_set: CopySet, gallery_index: Path
) -> None:
    with SearchEngine.open(gallery_index) as engine:
        results = engine.search([str(p.copy) for p in copy_set.copies if p.edit == "hflip"], k=3)
    for result in results:
        top, runner_up = result.matches[0], result.matches[1]
        assert top.score > runner_up.score
        assert 0.9 < top.score <= 1.0 + 1e-6
        assert top.rank == 1 and runner_up.rank == 2
        assert abs(top.distance - (1.0 - top.score)) < 1e-6
