"""Retrieval metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.evaluation import metrics


def r(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=bool)


def test_average_precision_hand_computed() -> None:
    # Relevant at ranks 1, 3, 6 of 3 relevant: (1/1 + 2/3 + 3/6) / 3 = 0.72222
    assert metrics.average_precision(r(1, 0, 1, 0, 0, 1), 3) == pytest.approx(
        (1 + 2 / 3 + 3 / 6) / 3
    )
    # A relevant item missing from a cut ranking counts as precision 0: (1/2) / 2
    assert metrics.average_precision(r(0, 1, 0), 2) == pytest.approx(0.25)
    assert metrics.average_precision(r(0, 0, 0), 2) == 0.0
    assert metrics.average_precision(r(1, 1), 2) == 1.0


def test_query_without_relevant_items_is_undefined_and_left_out() -> None:
    assert metrics.average_precision(r(0, 0), 0) is None
    assert metrics.recall_at_k(r(0, 0), 1, 0) is None
    assert metrics.interpolated_precision(r(0, 0), 0) is None
    assert metrics.mean_or_none([0.5, None, 1.0]) == (0.75, 1)
    assert metrics.mean_or_none([None]) == (None, 1)


def test_precision_and_recall_at_k_including_k_beyond_the_gallery() -> None:
    ranked = r(1, 0, 1)
    assert metrics.precision_at_k(ranked, 1) == 1.0
    assert metrics.precision_at_k(ranked, 2) == 0.5
    assert metrics.precision_at_k(ranked, 10) == pytest.approx(
        2 / 10
    )  # missing results count wrong
    assert metrics.recall_at_k(ranked, 2, 4) == 0.25
    assert metrics.recall_at_k(ranked, 10, 2) == 1.0
    assert metrics.hit_at_k(r(0, 1), 1) == 0.0 and metrics.hit_at_k(r(0, 1), 2) == 1.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        metrics.precision_at_k(ranked, 0)


def test_ties_keep_gallery_order() -> None:
    scores = [0.5, 0.9, 0.5, 0.5]
    relevant = [0, 1, 1, 0]
    # 0.9 first, then the three 0.5s in gallery order: positions 0, 2, 3.
    np.testing.assert_array_equal(metrics.rank(scores, relevant), r(1, 0, 1, 0))
    assert metrics.average_precision(metrics.rank(scores, relevant), 2) == pytest.approx(
        (1 + 2 / 3) / 2
    )


def test_ns_score_definition() -> None:
    # UKBench: the query itself is in the ranking; 4 group members in the top 4 is perfect.
    assert metrics.ns_score(r(1, 1, 1, 1, 0)) == 4.0
    assert metrics.ns_score(r(1, 0, 1, 0, 1, 1)) == 2.0
    assert metrics.ns_score(r(1, 1, 1, 1, 1, 1), top=4) == 4.0
    assert metrics.ns_score(r(0, 0, 0, 0, 1)) == 0.0


def test_interpolated_precision_at_eleven_recall_levels() -> None:
    curve = metrics.interpolated_precision(r(1, 0, 1, 0), 2)
    assert curve is not None and len(curve) == 11
    # recall 0..0.5 reached at rank 1 with precision 1; recall 0.6..1.0 at rank 3, precision 2/3.
    np.testing.assert_allclose(curve[:6], 1.0)
    np.testing.assert_allclose(curve[6:], 2 / 3)


def test_query_scores_rank_each_row_against_the_others() -> None:
    # Rows 0 and 1 point nearly the same way, row 2 lies between them and row 3, opposite.
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [-1.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    found = metrics.query_scores(vectors, labels, k=2)
    # Row 0 ranks 1, 2, 3: relevant at rank 1 of 1.
    assert found.average_precision[0] == pytest.approx(1.0)
    # Row 2 ranks 1, 0, 3 (1 is closer than 0): its one relevant row is at rank 3.
    assert found.average_precision[2] == pytest.approx(1 / 3)
    assert found.precision_at_k[2] == 0.0
    assert found.precision_at_k[0] == 0.5
    assert found.k == 2


def test_query_scores_agree_with_the_training_map_and_leave_lonely_queries_undefined() -> None:
    from lookalike.training.validation import mean_average_precision

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    labels = np.append(rng.integers(0, 4, 299), 9)  # label 9 has one row: no relevant item
    found = metrics.query_scores(vectors, labels, block=64)
    assert np.isnan(found.average_precision[-1])
    assert np.nanmean(found.average_precision) == pytest.approx(
        mean_average_precision(vectors, labels)
    )
