"""The image downloader of product feeds: many URLs fetched fast and politely into a
content-addressed download cache, results streamed back as they complete.

Example:
    >>> from lookalike.feeds.fetching import Fetcher, FetchRequest
    >>> with Fetcher(Path("shop.idx/downloads")) as fetcher:  # doctest: +SKIP
    ...     for result in fetcher.fetch([FetchRequest("sku1#0", "https://.../1.jpg")]):
    ...         print(result.key, result.path or result.failure)

The downloads run on an asyncio loop in a thread of their own. ``fetch`` hands requests to it in
small batches, at most ``concurrency`` in flight, and results wait in a bounded hand-off the
caller takes them from without waking the loop: when the caller is slower than the network,
downloading pauses, so memory stays bounded however long the feed. A body is held in memory
only up to a few MiB; a larger one streams to disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from lookalike.errors import FetchCancelledError, InvalidInputError, MissingDependencyError
from lookalike.feeds.background import background
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
_CLOSED = object()
#: The consumer gives room back to the download loop this many results at a time (and
#: always before it waits): one wake-up of the loop per batch, not per image.
_ROOM_BATCH = 16


class _Handoff:
    """Results passed from the download loop to the thread that consumes them.

    The consumer takes ready results straight from a thread-safe queue: a result waiting for
    it is taken at once, without a round trip through the loop thread (which, on a machine
    whose cores are busy embedding, costs a scheduling delay per image). At most ``room``
    results wait; the loop waits for room before it hands one over, so downloads pause while
    the consumer is slower than the network."""

    def __init__(self, loop: asyncio.AbstractEventLoop, room: int) -> None:
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._loop = loop
        self._room = asyncio.Semaphore(room)
        self._owed = 0

    async def put(self, item: object) -> None:
        """On the loop: hand one result over when there is room for it."""
        await self._room.acquire()
        self._items.put(item)

    def put_final(self, item: object) -> None:
        """From any thread: the end, an error or a close, which need no room."""
        self._items.put(item)

    def take(self) -> object:
        """In the consumer's thread: the next item, waiting for one if none is ready."""
        try:
            item = self._items.get_nowait()
        except queue.Empty:
            self._give_back()  # before waiting: the loop may be waiting for room
            item = self._items.get()
        if isinstance(item, Fetched):
            self._owed += 1
            if self._owed >= _ROOM_BATCH:
                self._give_back()
        return item

    def _give_back(self) -> None:
        if self._owed:
            owed, self._owed = self._owed, 0
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits
                self._loop.call_soon_threadsafe(self._release, owed)

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._room.release()


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
        # Each request has one deadline for connecting, the headers and the whole body
        # (Downloader._request): no per-read timer, which aiohttp would re-arm for every chunk.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
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
        self._handoff: _Handoff | None = None

    @property
    def stats(self) -> FetchStats:
        """A snapshot of the counters (safe to poll from another thread during a fetch)."""
        return self._counter.snapshot()

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Downloader]:
        if self._loop is None or self._downloader is None:
            loop = asyncio.new_event_loop()
            loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="lookalike-store", initializer=background
                )
            )
            thread = threading.Thread(
                target=_run_in_background, args=(loop,), name="lookalike-fetch", daemon=True
            )
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
        if not self._busy.acquire(blocking=False):
            raise InvalidInputError(
                "Fetcher.fetch: another fetch of this Fetcher is still running; finish "
                "iterating it (or close it) first, or use a second Fetcher"
            )
        try:
            loop, downloader = self._started()
            handoff = self._handoff = _Handoff(loop, 2 * self.options.concurrency)
            job = asyncio.run_coroutine_threadsafe(
                self._dispatch(downloader, requests, handoff), loop
            )
            try:
                while True:
                    if self._closed:
                        raise _cancelled()
                    item = handoff.take()
                    if item is _END:
                        return
                    if item is _CLOSED:
                        raise _cancelled()
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, Fetched)
                    yield item
            finally:
                if not job.done():
                    job.cancel()
                    concurrent.futures.wait([job], timeout=30)
        finally:
            self._handoff = None
            self._busy.release()

    async def _dispatch(
        self,
        downloader: Downloader,
        requests: Iterator[FetchRequest],
        handoff: _Handoff,
    ) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def one(request: FetchRequest) -> None:
            # the slot is held until the result is handed over: a slow consumer stops downloads
            try:
                try:
                    result: object = await downloader.fetch_one(request)
                except Exception as exc:  # a fault of this machine: ends the fetch
                    result = exc
                await handoff.put(result)
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
            handoff.put_final(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            handoff.put_final(exc)
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
        handoff = self._handoff
        if handoff is not None:  # wake a consumer waiting in another thread
            handoff.put_final(_CLOSED)
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


def _run_in_background(loop: asyncio.AbstractEventLoop) -> None:
    background()
    loop.run_forever()


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
