"""Paired bootstrap intervals: seeded, paired by query, and honest about what they exclude."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.evaluation.bootstrap import paired_bootstrap, paired_differences


def test_identical_configurations_give_a_zero_interval() -> None:
    values = np.random.default_rng(1).uniform(size=300)
    interval = paired_bootstrap(values, values)
    assert (interval.mean, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero and interval.queries == 300


def test_a_consistent_gain_gives_an_interval_above_zero() -> None:
    rng = np.random.default_rng(2)
    before = rng.uniform(0.2, 0.8, size=200)
    after = before + 0.05 + rng.normal(0.0, 0.02, size=200)
    interval = paired_bootstrap(before, after)
    assert interval.excludes_zero and 0.0 < interval.low < 0.05 < interval.high
    assert interval.mean == pytest.approx(float(np.mean(after - before)))
    loss = paired_bootstrap(after, before)
    assert loss.high < 0.0 and loss.mean == pytest.approx(-interval.mean)


def test_pairing_sees_a_small_gain_that_unpaired_noise_would_hide() -> None:
    # Queries differ a lot from each other, configurations little: pairing removes the first.
    rng = np.random.default_rng(3)
    before = rng.uniform(0.0, 1.0, size=400)
    after = np.clip(before + 0.01, 0.0, 1.0)
    assert paired_bootstrap(before, after).low > 0.0


def test_noise_without_a_shift_gives_an_interval_around_zero() -> None:
    rng = np.random.default_rng(4)
    before = rng.uniform(size=500)
    after = before + rng.normal(0.0, 0.1, size=500)
    interval = paired_bootstrap(before, after)
    assert interval.low < 0.0 < interval.high and interval.high - interval.low < 0.05


def test_same_seed_same_interval_and_the_width_follows_the_confidence() -> None:
    rng = np.random.default_rng(5)
    before, after = rng.uniform(size=100), rng.uniform(size=100)
    assert paired_bootstrap(before, after, seed=9) == paired_bootstrap(before, after, seed=9)
    wide = paired_bootstrap(before, after, confidence=0.99)
    narrow = paired_bootstrap(before, after, confidence=0.8)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_undefined_queries_are_left_out_of_both_sides() -> None:
    before = np.array([0.5, np.nan, 0.2, 1.0])
    after = np.array([0.7, 0.9, np.nan, 1.0])
    assert paired_differences(before, after).tolist() == pytest.approx([0.2, 0.0])
    assert paired_bootstrap(before, after).queries == 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no query"):
        paired_bootstrap([np.nan], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=1.0)
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap([1.0], [1.0], resamples=0)
