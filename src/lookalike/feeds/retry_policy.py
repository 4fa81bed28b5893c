"""When to try a request again, and how long to wait first (pure functions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Statuses worth another try: the server is busy or failing for now.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(header: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None
    when there is none or it cannot be read. A date in the past means 0."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(attempt: int, base: float, rng: random.Random) -> float:
    """Full jitter: a uniform wait in [0, base * 2**attempt) before retry number
    ``attempt + 1`` (attempt 0 is the wait after the first failure)."""
    return rng.uniform(0.0, base * (2.0 ** min(attempt, 30)))


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None,
    base: float,
    max_retry_after: float,
    rng: random.Random,
) -> float:
    """The wait before the next try: what the server asked (at most ``max_retry_after``),
    else the jittered exponential backoff."""
    if retry_after is not None:
        return min(retry_after, max_retry_after)
    return backoff_delay(attempt, base, rng)


__all__ = ["RETRYABLE_STATUSES", "backoff_delay", "retry_after_seconds", "retry_delay"]
