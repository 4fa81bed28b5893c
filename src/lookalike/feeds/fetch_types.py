"""What a fetch is asked and what it answers: options, requests, results, failure reasons and
the counters a front end polls. Re-exported by ``lookalike.feeds.fetching``."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from lookalike.errors import InvalidInputError
from lookalike.version import __version__

MIB = 1024 * 1024
DEFAULT_USER_AGENT = f"lookalike/{__version__} (reverse image search; catalogue image fetcher)"


class FailureReason(StrEnum):
    """Why an image could not be fetched; the values are what reports and CSVs print."""

    HTTP_STATUS = "http-status"
    TIMEOUT = "timeout"
    TOO_LARGE = "too-large"
    NOT_AN_IMAGE = "not-an-image"
    BAD_URL = "bad-url"
    CONNECTION = "connection"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    NOT_FOUND = "not-found"  # a local file that is missing or unreadable


@dataclass(frozen=True)
class FetchOptions:
    """How politely and how hard to fetch.

    ``concurrency`` requests at once in all, at most ``per_host`` to one host; ``timeout``
    seconds per request (connecting, the headers and the whole body: a stalled body times
    out); ``retries`` more tries after a connection error, 429, 408 or 5xx, waiting a random
    time up to ``backoff * 2**attempt`` seconds (full jitter; ``seed`` makes it repeatable) or
    what Retry-After asks, at most ``max_retry_after``; bodies over ``max_bytes`` are refused;
    at most ``max_redirects`` redirects; ``revalidate`` asks the server whether cached images
    changed (conditional requests) instead of trusting the cache.
    """

    concurrency: int = 32
    per_host: int = 8
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 0.5
    max_retry_after: float = 60.0
    max_bytes: int = 50 * MIB
    max_redirects: int = 5
    revalidate: bool = False
    user_agent: str = DEFAULT_USER_AGENT
    seed: int | None = None

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, expected: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise InvalidInputError(
                    f"FetchOptions.{name}: expected {expected}, got {value!r}; pass {expected}"
                )

        check("concurrency", self.concurrency >= 1, "an integer >= 1")
        check("per_host", self.per_host >= 1, "an integer >= 1")
        check("timeout", math.isfinite(self.timeout) and self.timeout > 0, "seconds > 0")
        check("retries", self.retries >= 0, "an integer >= 0")
        check("backoff", math.isfinite(self.backoff) and self.backoff >= 0, "seconds >= 0")
        check(
            "max_retry_after",
            math.isfinite(self.max_retry_after) and self.max_retry_after >= 0,
            "seconds >= 0",
        )
        check("max_bytes", self.max_bytes >= 1, "a byte count >= 1")
        check("max_redirects", self.max_redirects >= 0, "an integer >= 0")
        check(
            "user_agent",
            bool(self.user_agent.strip()) and "\n" not in self.user_agent,
            "a one-line, non-empty string",
        )


@dataclass(frozen=True)
class FetchRequest:
    """One image to fetch: the caller's ``key`` (e.g. ``f"{row_id}#{n}"``) and its ``url``
    (an http(s) URL, a local path or a ``file://`` URL)."""

    key: str
    url: str


@dataclass(frozen=True)
class Fetched:
    """The outcome of one FetchRequest.

    ``path`` is the image's file: in the download cache (named by its SHA-256 and sniffed
    format) or, for a local location, the file itself; None when it failed. ``from_cache``:
    no body was downloaded this run (answered from the cache, or a 304). ``detail`` says what
    happened in words ("HTTP 404", "timed out after 20 s"); ``attempts`` counts requests sent
    for it (0 when none was); ``status`` is the last HTTP status seen.
    """

    key: str
    url: str
    path: Path | None
    sha256: str | None
    from_cache: bool
    failure: FailureReason | None
    detail: str
    attempts: int
    status: int | None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class FetchStats:
    """Counters of a Fetcher since it was made (a snapshot; poll ``Fetcher.stats`` again).

    ``submitted``: requests taken from the feed so far (``done`` of them answered);
    ``downloaded``: bodies fetched and stored; ``from_cache``: answered without a body;
    ``local``: local files; ``failures``: failed requests by reason; ``bytes``: body bytes
    received; ``requests``: HTTP requests sent (retries and redirects included);
    ``retries``: of which retries.
    """

    submitted: int = 0
    downloaded: int = 0
    from_cache: int = 0
    local: int = 0
    failures: Mapping[FailureReason, int] = field(default_factory=lambda: MappingProxyType({}))
    bytes: int = 0
    requests: int = 0
    retries: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def done(self) -> int:
        return self.downloaded + self.from_cache + self.local + self.failed


class StatsCounter:
    """The live counters behind ``Fetcher.stats`` (written on the loop, read from anywhere):
    plain integers under a lock, a FetchStats made only when asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._failures: Counter[FailureReason] = Counter()

    def add(self, **counts: int) -> None:
        with self._lock:
            self._counts.update(counts)

    def finished(self, result: Fetched, *, local: bool) -> None:
        with self._lock:
            if result.failure is not None:
                self._failures[result.failure] += 1
            elif local:
                self._counts["local"] += 1
            elif result.from_cache:
                self._counts["from_cache"] += 1
            else:
                self._counts["downloaded"] += 1

    def snapshot(self) -> FetchStats:
        with self._lock:
            return FetchStats(**self._counts, failures=MappingProxyType(dict(self._failures)))


__all__ = [
    "DEFAULT_USER_AGENT",
    "FailureReason",
    "FetchOptions",
    "FetchRequest",
    "FetchStats",
    "Fetched",
    "StatsCounter",
]
