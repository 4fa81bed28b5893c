"""The image downloader of product feeds: many URLs fetched fast and politely into a
content-addressed download cache, results streamed back as they complete.

Example:
    >>> from lookalike.feeds.fetching import Fetcher, FetchRequest
    >>> with Fetcher(Path("shop.idx/downloads")) as fetcher:  # doctest: +SKIP
    ...     for result in fetcher.fetch([FetchRequest("sku1#0", "https://.../1.jpg")]):
    ...         print(result.key, result.path or result.failure)

The downloads run on an asyncio loop in a thread of their own. ``fetch`` hands requests to it in
small batches, at most ``concurrency`` in flight, and results wait in a bounded queue: when the
caller is slower than the network, downloading pauses, so memory stays bounded however long
the feed. Bodies stream to disk, never into memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from lookalike.errors import FetchCancelledError, InvalidInputError, MissingDependencyError
from lookalike.feeds.download_cache import DownloadCache
from lookalike.feeds.downloading import Downloader, count_request
from lookalike.feeds.fetch_types import (
    FailureReason,
    Fetched,
    FetchOptions,
    FetchRequest,
    FetchStats,
    StatsCounter,
)

if TYPE_CHECKING:
    import aiohttp

_BATCH = 256
_END = object()


def _session(options: FetchOptions) -> aiohttp.ClientSession:
    import aiohttp

    # Count requests as they go on the wire: aiohttp itself resends an idempotent request
    # once when its connection breaks (RFC 9112 9.3.1), and those count too.
    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(count_request)

    connector = aiohttp.TCPConnector(
        limit=options.concurrency, limit_per_host=options.per_host, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=options.timeout, sock_read=options.timeout
        ),
        headers={"User-Agent": options.user_agent, "Accept": "image/*,*/*;q=0.5"},
        cookie_jar=aiohttp.DummyCookieJar(),
        # The environment's proxies and .netrc are read once (feeds.proxies), not per request.
        trust_env=False,
        trace_configs=[tracing],
    )


class Fetcher:
    """Downloads images into ``cache_dir`` (see ``download_cache``). One ``fetch`` at a time;
    ``close()`` (or leaving the ``with`` block) cancels what is in flight and frees the loop.

    Making a Fetcher starts no thread: its event loop thread starts with the first ``fetch``,
    so worker processes forked before that copy no running loop.

    ``sync_each=False`` defers flushing downloaded files to disk to ``flush`` (or ``close``),
    many at a time: for a caller that flushes before it commits anything naming them."""

    def __init__(
        self, cache_dir: Path, options: FetchOptions = FetchOptions(), *, sync_each: bool = True
    ) -> None:
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "fetching images from URLs needs aiohttp, which is not installed; "
                "install it with: pip install 'lookalike[feeds]'"
            ) from exc
        self.options = options
        self.cache = DownloadCache(Path(cache_dir), sync_each=sync_each)
        self._counter = StatsCounter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._downloader: Downloader | None = None
        self._busy = threading.Lock()
        self._closed = False

    @property
    def stats(self) -> FetchStats:
        """A snapshot of the counters (safe to poll from another thread during a fetch)."""
        return self._counter.snapshot()

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Downloader]:
        if self._loop is None or self._downloader is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="lookalike-fetch", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread

            async def open_downloader() -> Downloader:
                return Downloader(self.cache, self.options, self._counter, _session(self.options))

            self._downloader = asyncio.run_coroutine_threadsafe(open_downloader(), loop).result()
        return self._loop, self._downloader

    def fetch(self, requests: Iterable[FetchRequest]) -> Iterator[Fetched]:
        """Fetch every request; yields one Fetched per request as each completes (not in
        input order) while later downloads continue. ``requests`` is read lazily, from the
        download thread. Raises (while iterating) only for a fault of this machine, such as
        a full disk, or an error raised by ``requests`` itself."""
        if self._closed:
            raise InvalidInputError("Fetcher.fetch: this Fetcher is closed; make a new one")
        return self._results(iter(requests))

    def _results(self, requests: Iterator[FetchRequest]) -> Iterator[Fetched]:
        async def make_queue() -> asyncio.Queue[object]:
            return asyncio.Queue(maxsize=2 * self.options.concurrency)

        if not self._busy.acquire(blocking=False):
            raise InvalidInputError(
                "Fetcher.fetch: another fetch of this Fetcher is still running; finish "
                "iterating it (or close it) first, or use a second Fetcher"
            )
        try:
            loop, downloader = self._started()
            queue = asyncio.run_coroutine_threadsafe(make_queue(), loop).result()
            job = asyncio.run_coroutine_threadsafe(
                self._dispatch(downloader, requests, queue), loop
            )
            try:
                while True:
                    if self._closed:
                        raise _cancelled()
                    waiting = asyncio.run_coroutine_threadsafe(queue.get(), loop)
                    try:
                        item = waiting.result()
                    except concurrent.futures.CancelledError:
                        raise _cancelled() from None  # closed from another thread
                    finally:
                        waiting.cancel()
                    if item is _END:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, Fetched)
                    yield item
            finally:
                if not job.done():
                    job.cancel()
                    concurrent.futures.wait([job], timeout=30)
        finally:
            self._busy.release()

    async def _dispatch(
        self,
        downloader: Downloader,
        requests: Iterator[FetchRequest],
        queue: asyncio.Queue[object],
    ) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def one(request: FetchRequest) -> None:
            # the slot is held until the result is queued: a slow consumer stops downloads
            try:
                try:
                    result: object = await downloader.fetch_one(request)
                except Exception as exc:  # a fault of this machine: ends the fetch
                    result = exc
                await queue.put(result)
            finally:
                slots.release()

        try:
            while batch := await asyncio.to_thread(_take, requests, _BATCH):
                for request in batch:
                    await slots.acquire()
                    self._counter.add(submitted=1)
                    task = asyncio.create_task(one(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.wait(set(tasks))
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(set(tasks))

    def flush(self) -> None:
        """Make every file fetched so far durable (see ``sync_each``); safe from any thread."""
        self.cache.flush()

    def close(self) -> None:
        """Cancel downloads in flight, close connections and the cache; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, thread, downloader = self._loop, self._thread, self._downloader
        if loop is not None and thread is not None:

            async def shutdown() -> None:
                current = asyncio.current_task()
                pending = [t for t in asyncio.all_tasks() if t is not current]
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=10)
                if downloader is not None:
                    await downloader.session.close()

            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
        self.cache.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _cancelled() -> FetchCancelledError:
    return FetchCancelledError(
        "Fetcher.fetch: the Fetcher was closed before every request was answered; the images "
        "not answered were not fetched (run again to fetch them)"
    )


def _take(requests: Iterator[FetchRequest], n: int) -> list[FetchRequest]:
    batch = list(itertools.islice(requests, n))
    for request in batch:
        if not isinstance(request, FetchRequest):
            raise InvalidInputError(
                f"Fetcher.fetch: expected FetchRequest items, got {type(request).__name__}; "
                "wrap each URL as FetchRequest(key, url)"
            )
    return batch


__all__ = [
    "FailureReason",
    "FetchCancelledError",
    "FetchOptions",
    "FetchRequest",
    "FetchStats",
    "Fetched",
    "Fetcher",
    "MissingDependencyError",
]
