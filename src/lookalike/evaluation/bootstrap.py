"""Paired bootstrap confidence intervals for the difference between two configurations.

Both configurations answer the same queries, so the unit resampled is the query: each resample
draws queries with replacement and takes the mean of (metric under B - metric under A) over
them. The interval is the percentile interval of those means. Queries whose metric is undefined
under either configuration (NaN, e.g. AP of a query with no relevant image) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
#: Resamples drawn at once: bounds the memory of a bootstrap over many queries.
_CHUNK = 256


@dataclass(frozen=True)
class Interval:
    """The mean paired difference (B - A) over the queries and its bootstrap interval."""

    mean: float
    low: float
    high: float
    queries: int
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "queries": self.queries,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "excludes_zero": self.excludes_zero,
        }


def paired_differences(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """B - A per query, without the queries undefined (NaN) under either."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(
            f"paired metrics need two 1-D arrays over the same queries, got shapes "
            f"{first.shape} and {second.shape}"
        )
    diff = second - first
    return diff[~np.isnan(diff)]


def paired_bootstrap(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The mean of B - A over the queries with its ``confidence`` percentile interval from
    ``resamples`` seeded resamples of the queries.

    Example:
        >>> paired_bootstrap([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]).low
        0.0
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    diff = paired_differences(a, b)
    if len(diff) == 0:
        raise ValueError("no query has the metric defined under both configurations")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        picks = rng.integers(0, len(diff), size=(count, len(diff)))
        means[start : start + count] = diff[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(
        mean=float(diff.mean()),
        low=float(low),
        high=float(high),
        queries=len(diff),
        confidence=confidence,
        resamples=resamples,
    )


__all__ = ["Interval", "paired_bootstrap", "paired_differences"]
