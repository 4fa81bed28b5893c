"""Fetching one image on the event loop: a local file, the cache, or HTTP with per-host
politeness, redirects, a deadline per request, a size limit, retries and content sniffing.

Runs on the Fetcher's own event loop thread; ``Downloader.fetch_one`` never raises for a bad
image or a bad server (those are Fetched failures), only for a fault of this machine (a full
disk), which ends the whole fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.disk_errors import writing
from lookalike.feeds.download_cache import CachedUrl, DownloadCache, StagedFile
from lookalike.feeds.fetch_types import (
    FailureReason,
    Fetched,
    FetchOptions,
    FetchRequest,
    StatsCounter,
)
from lookalike.feeds.host_gate import HostGate
from lookalike.feeds.locations import BadLocationError, parse_location, resolve_redirect
from lookalike.feeds.proxies import EnvironmentRoutes
from lookalike.feeds.retry_policy import RETRYABLE_STATUSES, retry_after_seconds, retry_delay
from lookalike.feeds.sniffing import SNIFF_BYTES, image_extension

if TYPE_CHECKING:
    import aiohttp

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024
#: Bodies up to this size are held in memory until stored (most product photos); larger
#: ones stream to a file. Bounds memory to about concurrency x this.
_IN_MEMORY = 8 * 1024 * 1024


class SentRequests:
    """How many HTTP requests one attempt put on the wire (its ``trace_request_ctx``)."""

    def __init__(self) -> None:
        self.count = 0


async def count_request(session: object, context: object, params: object) -> None:
    """aiohttp trace hook, called each time a request's headers are sent."""
    sent = getattr(context, "trace_request_ctx", None)
    if isinstance(sent, SentRequests):
        sent.count += 1


@dataclass(frozen=True)
class _Outcome:
    """One attempt (one request, or a chain of redirects): a result, or a reason to retry."""

    failure: FailureReason | None
    detail: str
    status: int | None = None
    path: Path | None = None
    sha256: str | None = None
    from_cache: bool = False
    retry: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class _Body:
    """A received image body: its bytes, or a staging file with its digest."""

    data: bytes | Path
    ext: str
    sha256: str | None


@dataclass(frozen=True)
class _Refused:
    failure: FailureReason
    detail: str


class Downloader:
    """Fetches requests on the running event loop; one per Fetcher."""

    def __init__(
        self,
        cache: DownloadCache,
        options: FetchOptions,
        stats: StatsCounter,
        session: aiohttp.ClientSession,
    ) -> None:
        self.cache = cache
        self.options = options
        self.stats = stats
        self.session = session
        self._rng = random.Random(options.seed)
        self._gates: dict[str, HostGate] = {}
        self._in_flight: dict[str, asyncio.Future[Fetched]] = {}
        self._routes = EnvironmentRoutes()

    async def fetch_one(self, request: FetchRequest) -> Fetched:
        try:
            location = parse_location(request.url)
        except BadLocationError as exc:
            result = self._failed(request, FailureReason.BAD_URL, str(exc))
            self.stats.finished(result, local=False)
            return result
        if location.path is not None:
            result = await asyncio.to_thread(self._local, request, location.path)
            self.stats.finished(result, local=True)
            return result
        assert location.url is not None
        url = location.url
        cached = self.cache.lookup(url)
        if cached is not None and not self.options.revalidate:
            result = Fetched(
                request.key, request.url, cached.path, cached.sha256, True, None, "cached", 0, None
            )
        elif url in self._in_flight:  # the same URL twice in a feed: downloaded once
            first = await asyncio.shield(self._in_flight[url])
            result = replace(
                first, key=request.key, url=request.url, from_cache=first.ok, attempts=0
            )
        else:
            shared = self._in_flight[url] = asyncio.get_running_loop().create_future()
            try:
                result = await self._download(request, url, location.host, cached)
                shared.set_result(result)
            except asyncio.CancelledError:
                shared.cancel()
                raise
            except Exception as exc:
                shared.set_exception(exc)
                shared.exception()  # waiters re-raise it; nobody else needs to see it
                raise
            finally:
                del self._in_flight[url]
        self.stats.finished(result, local=False)
        return result

    @staticmethod
    def _failed(
        request: FetchRequest,
        reason: FailureReason,
        detail: str,
        attempts: int = 0,
        status: int | None = None,
    ) -> Fetched:
        return Fetched(
            request.key, request.url, None, None, False, reason, detail, attempts, status
        )

    def _local(self, request: FetchRequest, path: Path) -> Fetched:
        """A local file: checked to be an image and hashed, never copied."""
        digest = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
                digest.update(head)
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return self._failed(request, FailureReason.NOT_FOUND, f"no file {path}")
        except IsADirectoryError:
            return self._failed(request, FailureReason.NOT_FOUND, f"{path} is a folder")
        except OSError as exc:
            return self._failed(
                request, FailureReason.NOT_FOUND, f"cannot read {path}: {exc.strerror}"
            )
        if image_extension(head) is None:
            what = "an empty file" if not head else "not an image file"
            return self._failed(request, FailureReason.NOT_AN_IMAGE, f"{path} is {what}")
        return Fetched(
            request.key, request.url, path, digest.hexdigest(), False, None, "local file", 0, None
        )

    def _gate(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = HostGate(self.options.per_host)
        return gate

    async def _download(
        self, request: FetchRequest, url: str, host: str, cached: CachedUrl | None
    ) -> Fetched:
        attempts = 0
        retry = 0
        while True:
            outcome, sent = await self._attempt(url, host, cached)
            attempts += sent
            if not outcome.retry or retry >= self.options.retries:
                break
            delay = retry_delay(
                retry,
                retry_after=outcome.retry_after,
                base=self.options.backoff,
                max_retry_after=self.options.max_retry_after,
                rng=self._rng,
            )
            retry += 1
            self.stats.add(retries=1)
            await asyncio.sleep(delay)
        detail = outcome.detail
        if outcome.failure is not None and retry:
            detail = f"{detail} (after {retry + 1} tries)"
        return Fetched(
            request.key,
            request.url,
            outcome.path,
            outcome.sha256,
            outcome.from_cache,
            outcome.failure,
            detail,
            attempts,
            outcome.status,
        )

    async def _attempt(self, url: str, host: str, cached: CachedUrl | None) -> tuple[_Outcome, int]:
        """One try: the request and the redirects it leads to. Returns the outcome and the
        number of requests sent."""
        import aiohttp

        visited = {url}
        current, current_host, sent = url, host, SentRequests()
        while True:
            gate = self._gate(current_host)
            try:
                async with gate.slot():
                    before = sent.count
                    try:
                        outcome, location = await self._request(url, current, cached, sent)
                    finally:
                        self.stats.add(requests=sent.count - before)
            except TimeoutError:
                return _Outcome(
                    FailureReason.TIMEOUT, f"timed out after {self.options.timeout:g} s"
                ), sent.count
            except aiohttp.ClientConnectorCertificateError as exc:  # will not fix itself
                refused = _Outcome(FailureReason.CONNECTION, f"TLS: {_describe(exc)}")
                return refused, sent.count
            except aiohttp.InvalidURL as exc:
                return _Outcome(FailureReason.BAD_URL, f"invalid URL {exc}"), sent.count
            except (aiohttp.ClientError, ConnectionError) as exc:
                return _Outcome(FailureReason.CONNECTION, _describe(exc), retry=True), sent.count
            if outcome.retry_after is not None:
                gate.pause(min(outcome.retry_after, self.options.max_retry_after))
            if location is None:
                return outcome, sent.count
            try:
                target = resolve_redirect(current, location)
            except BadLocationError as exc:
                return _Outcome(
                    FailureReason.BAD_URL, f"redirect to a bad URL: {exc}", outcome.status
                ), sent.count
            if target in visited or len(visited) > self.options.max_redirects:
                what = "a redirect loop" if target in visited else "too many redirects"
                return _Outcome(
                    FailureReason.TOO_MANY_REDIRECTS,
                    f"{what} after {len(visited) - 1} redirects",
                    outcome.status,
                ), sent.count
            visited.add(target)
            current = target
            current_host = parse_location(target).host

    async def _request(
        self, url: str, current: str, cached: CachedUrl | None, sent: SentRequests
    ) -> tuple[_Outcome, str | None]:
        """One HTTP request within the deadline; (outcome, redirect target or None)."""
        from yarl import URL

        target = URL(current, encoded=True)
        route = self._routes.route(target.scheme, target.host or "")
        headers = {}
        if cached is not None:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        async with (
            asyncio.timeout(self.options.timeout),
            self.session.get(
                target,
                headers=headers,
                proxy=route.proxy,
                proxy_auth=route.proxy_auth,
                auth=route.auth,
                allow_redirects=False,
                trace_request_ctx=sent,
            ) as response,
        ):
            status = response.status
            if status in _REDIRECTS and "Location" in response.headers:
                return _Outcome(None, f"HTTP {status}", status), response.headers["Location"]
            if status == 304 and cached is not None:
                return _Outcome(
                    None, "not modified", status, cached.path, cached.sha256, from_cache=True
                ), None
            if status in RETRYABLE_STATUSES:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                busy = _Outcome(FailureReason.HTTP_STATUS, f"HTTP {status}", status, retry=True)
                return replace(busy, retry_after=wait), None
            if not 200 <= status < 300:
                return _Outcome(FailureReason.HTTP_STATUS, f"HTTP {status}", status), None
            length = response.content_length
            if length is not None and length > self.options.max_bytes:
                return _Outcome(
                    FailureReason.TOO_LARGE,
                    f"{length} bytes (Content-Length) over the limit of {self.options.max_bytes}",
                    status,
                ), None
            with writing(self.cache.folder):
                body = await self._receive(response)
            if isinstance(body, _Refused):
                return _Outcome(body.failure, body.detail, status), None
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
        # The body is in: storing it (hash, fsync) is this machine's work, outside the deadline
        # (a slow disk must not turn a stored image into a reported timeout).
        with writing(self.cache.folder):
            kept = await asyncio.to_thread(
                self.cache.keep,
                url,
                body.data,
                body.ext,
                sha256=body.sha256,
                etag=etag,
                last_modified=last_modified,
            )
        return _Outcome(None, f"HTTP {status}", status, kept.path, kept.sha256), None

    async def _receive(self, response: aiohttp.ClientResponse) -> _Body | _Refused:
        """Read the body, counting it against ``max_bytes`` as it comes. A body up to
        ``_IN_MEMORY`` bytes stays in memory (hashed and written in one go off the loop);
        a larger one streams into a staging file, hashed on the way."""
        limit = self.options.max_bytes
        chunks: list[bytes] = []
        size = 0
        staged: StagedFile | None = None
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                self.stats.add(bytes=len(chunk))
                if size > limit:
                    return _Refused(
                        FailureReason.TOO_LARGE, f"body over the limit of {limit} bytes"
                    )
                if staged is None and size > _IN_MEMORY:
                    staged = StagedFile(self.cache.staging_file())
                    for held in chunks:
                        staged.write(held)
                    chunks = []
                if staged is None:
                    chunks.append(chunk)
                else:
                    staged.write(chunk)
            data = b"".join(chunks)
            ext = image_extension(data[:SNIFF_BYTES] if staged is None else staged.head)
            if ext is None:
                what = "an empty body" if size == 0 else "not an image"
                return _Refused(FailureReason.NOT_AN_IMAGE, what)
            if staged is None:
                return _Body(data, ext, None)
            staged.close()
            body = _Body(staged.path, ext, staged.digest.hexdigest())
            staged = None  # handed over to the cache
            return body
        finally:
            if staged is not None:
                staged.discard()


def _describe(exc: BaseException) -> str:
    """An exception in one short line (aiohttp's parser errors span several)."""
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


__all__ = ["Downloader", "SentRequests", "count_request"]
