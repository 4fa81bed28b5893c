"""Bringing an index up to date with a product feed, as one pipeline: images download in the
background (``feeds.fetching``) while those already fetched are decoded in worker processes and
embedded here, and embedded images are committed in atomic steps with their metadata.

Everything a re-run needs lives in the catalog: a feed image's path is its file in the download
cache, its metadata holds the product id (under the feed's id column), ``image_url`` and the
row's other columns. So a run killed at any moment leaves a consistent index, and the next run
plans from what was committed."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.catalog import PRODUCT_FIELD_SETTING
from lookalike.catalog_records import ImageEntry
from lookalike.decoding import WorkerPool
from lookalike.embedders.base import Embedder
from lookalike.embedders.batching import embed_images
from lookalike.feeds.feed_file import Feed
from lookalike.feeds.feed_plan import FeedImage, FeedPlan, IndexedFeedImage, identity, plan_feed
from lookalike.feeds.feed_report import DECODE_ERROR, NO_IMAGE, FeedFailure, FeedReport
from lookalike.feeds.fetching import Fetched, Fetcher, FetchOptions, FetchRequest
from lookalike.index_options import IndexOptions, IndexProgress, ProgressCallback
from lookalike.store import IndexStore


def sync_feed(
    store: IndexStore,
    embedder: Callable[[], Embedder],
    feed: Feed,
    *,
    options: IndexOptions,
    fetch: FetchOptions,
    retry_failed: bool = False,
    progress: ProgressCallback | None = None,
) -> FeedReport:
    """Make the index hold the feed's images with the feed's metadata (images that came from
    elsewhere are left alone). Failures are reported, never raised, and remembered: an image
    that failed is not fetched again by the next runs unless ``retry_failed`` (or
    ``fetch.revalidate``), so an unchanged feed costs its shop no request."""
    started = time.perf_counter()
    catalog = store.catalog
    indexed = indexed_feed_images(store, feed.id_column)
    recorded = catalog.setting(FAILURES_SETTING)
    known = None if retry_failed else _failures_recorded(recorded)
    plan = plan_feed(feed, indexed, revalidate=fetch.revalidate, failed=known)
    # Commits only where something changed: every commit makes readers (a server) reload.
    if plan.remove or plan.metadata or catalog.setting(PRODUCT_FIELD_SETTING) != feed.id_column:
        with catalog.transaction():
            catalog.set_setting(PRODUCT_FIELD_SETTING, feed.id_column)
            catalog.delete(plan.remove)
            catalog.set_metadata(plan.metadata.items())
    run = _FeedRun(store, embedder, plan, options, progress or (lambda event: None))
    if plan.fetch:
        with (
            WorkerPool(options.workers) as pool,
            Fetcher(store.layout.downloads, fetch, sync_each=False) as f,
        ):
            run.ingest(f, pool)
    failures = _failures_json(run.failures)
    if failures != (recorded or "[]"):
        with catalog.transaction():  # after every commit: a killed run simply tries them again
            catalog.set_setting(FAILURES_SETTING, failures)
    if store.needs_compaction():
        store.compact()
    return FeedReport(
        rows=len(feed.rows),
        images=sum(len(row.images) for row in feed.rows),
        added=run.added,
        updated=run.updated,
        metadata_updated=len(plan.metadata),
        removed=len(plan.remove) + run.dropped,
        unchanged=plan.unchanged + run.unchanged,
        downloaded=run.downloaded,
        from_cache=run.from_cache,
        shared=run.shared,
        embedded=run.added + run.updated,
        failures=tuple(run.failures),
        failed_before=len(plan.failed_before),
        seconds=time.perf_counter() - started,
    )


def _failures_recorded(text: str | None) -> dict[tuple[str, str], tuple[str, str]]:
    """The failures the last run recorded: (product, url) -> (reason, detail)."""
    if not text:
        return {}
    try:
        rows = json.loads(text)
        return {(str(p), str(u)): (str(r), str(d)) for p, u, r, d in rows}
    except (ValueError, TypeError):  # unreadable: every image is simply tried again
        return {}


def _failures_json(failures: Iterable[FeedFailure]) -> str:
    return json.dumps(
        [[f.product, f.url, f.reason, f.detail] for f in failures if f.reason != NO_IMAGE]
    )


def indexed_feed_images(store: IndexStore, id_column: str) -> list[IndexedFeedImage]:
    """The indexed images whose metadata names a product (under ``id_column``) and a URL."""
    metadata = store.catalog.metadata()
    ids = [i for i, fields in metadata.items() if identity(id_column, fields) is not None]
    records = store.catalog.by_ids(ids)
    return [IndexedFeedImage(i, records[i].hash, metadata[i]) for i in ids if i in records]


#: The catalog setting holding the images that failed in the last run (JSON).
FAILURES_SETTING = "feed_failures"


class _FeedRun:
    """The fetch -> decode -> embed -> commit pipeline of one sync, and its counts."""

    def __init__(
        self,
        store: IndexStore,
        embedder: Callable[[], Embedder],
        plan: FeedPlan,
        options: IndexOptions,
        notify: ProgressCallback,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._plan = plan
        self._options = options
        self._notify = notify
        self.failures = [
            FeedFailure(product, "", NO_IMAGE, "the row's image cell is empty")
            for product in plan.empty
        ] + [
            FeedFailure(image.product, image.url, reason, detail)
            for image, reason, detail in plan.failed_before
        ]
        self.added = self.updated = self.unchanged = self.dropped = self.shared = 0
        self.downloaded = self.from_cache = 0
        self._answered = 0
        self._accepted = 0
        #: Paths taken by images accepted in this run but not yet committed.
        self._claimed: set[str] = set()
        #: Images whose file is the one an image accepted in this run holds, by path.
        self._sharers: dict[str, list[FeedImage]] = {}
        self._queue: deque[tuple[FeedImage, Fetched]] = deque()
        self._pixels: list[npt.NDArray[np.uint8]] = []
        self._waiting: list[tuple[FeedImage, Fetched]] = []
        self._vectors: list[npt.NDArray[np.float32]] = []
        self._ready: list[tuple[FeedImage, Fetched]] = []
        self._doomed: list[int] = []
        #: Perceptual hashes of decoded downloads, by content hash, until committed.
        self._phashes: dict[str, int] = {}
        self._flush: Callable[[], None] = lambda: None

    def ingest(self, fetcher: Fetcher, pool: WorkerPool) -> None:
        # Start the decoding processes before the fetcher's thread exists: a fork copies only
        # the forking thread, and a lock another thread held would stay held in the child.
        list(pool.hash([os.devnull]))
        self._flush = fetcher.flush
        embedder = self._embedder()
        items = {item.key: item for item in self._plan.fetch}
        requests = (FetchRequest(item.key, item.url) for item in self._plan.fetch)
        files = self._accepted_files(fetcher.fetch(requests), items)
        decoded = pool.decode(
            files, embedder.input_spec, max_pixels=self._options.max_pixels, perceptual=True
        )
        for outcome in decoded:
            item, got = self._queue.popleft()
            if outcome.pixels is None:
                path = str(got.path)
                self._claimed.discard(path)
                for failed in (item, *self._sharers.pop(path, [])):
                    self._fail(failed, DECODE_ERROR, outcome.error or "cannot decode")
                if item.replaces is not None:
                    self._doomed.append(item.replaces)
                continue
            self._pixels.append(outcome.pixels)
            self._waiting.append((item, got))
            if outcome.phash is not None and got.sha256:
                self._phashes[got.sha256] = outcome.phash
            if len(self._pixels) >= self._options.batch_size:
                self._embed(embedder)
            if len(self._ready) >= self._options.commit_every:
                self._commit()
        self._embed(embedder)
        self._commit()

    def _accepted_files(
        self, answers: Iterator[Fetched], items: dict[str, FeedImage]
    ) -> Iterator[str]:
        """The files to decode, in the order fetches complete; failures, unchanged images and
        files another image already holds are counted and left out."""
        catalog = self._store.catalog
        total = len(items)
        for got in answers:
            item = items[got.key]
            self._answered += 1
            self._notify(IndexProgress("download", self._answered, total))
            if got.failure is not None or got.path is None:
                reason = got.failure.value if got.failure is not None else "not-found"
                self._fail(item, reason, got.detail)
                continue
            if got.from_cache:
                self.from_cache += 1
            else:
                self.downloaded += 1
            if item.replaces is not None and got.sha256 == item.replaces_hash:
                self.unchanged += 1
                continue
            path = str(got.path)
            holder = None if path in self._claimed else catalog.by_path(path)
            if path in self._claimed or (holder is not None and holder.id != item.replaces):
                if item.replaces is not None:
                    self._doomed.append(item.replaces)
                if path in self._claimed:  # shares the fate of the image holding the file
                    self._sharers.setdefault(path, []).append(item)
                else:
                    self.shared += 1
                continue
            self._claimed.add(path)
            self._queue.append((item, got))
            self._accepted += 1
            yield path

    def _fail(self, item: FeedImage, reason: str, detail: str) -> None:
        self.failures.append(FeedFailure(item.product, item.url, reason, detail))
        self._notify(IndexProgress("failed", len(self.failures), len(self._plan.fetch)))

    def _embed(self, embedder: Embedder) -> None:
        if not self._pixels:
            return
        vectors = embed_images(embedder, self._pixels)
        self._vectors.extend(vectors)
        self._ready.extend(self._waiting)
        self._pixels.clear()
        self._waiting.clear()
        done = self.added + self.updated + len(self._ready)
        self._notify(IndexProgress("embed", done, self._accepted))

    def _commit(self) -> None:
        """One transaction: the embedded images with their metadata, replacing what they
        replace, and the images whose URL no longer yields a usable image."""
        if not self._ready and not self._doomed:
            return
        store, catalog = self._store, self._store.catalog
        entries = []
        for _, got in self._ready:
            try:
                stat = Path(str(got.path)).stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:  # a local file removed since: the vector is still its image's
                size, mtime = 0, 0
            digest = got.sha256 or ""
            entries.append(
                ImageEntry(
                    str(got.path), size, mtime, digest, None, self._phashes.pop(digest, None)
                )
            )
        replaced = [item.replaces for item, _ in self._ready if item.replaces is not None]
        # The downloads are flushed in one go here, before the rows naming them are committed.
        self._flush()
        with catalog.transaction():
            catalog.delete([*replaced, *self._doomed])
            if self._ready:
                ids = store.append(np.stack(self._vectors).astype(np.float32), entries)
                catalog.set_metadata(
                    (new, item.fields) for (item, _), new in zip(self._ready, ids, strict=True)
                )
        self.updated += len(replaced)
        self.added += len(self._ready) - len(replaced)
        self.dropped += len(self._doomed)
        for _, got in self._ready:
            self._claimed.discard(str(got.path))
            self.shared += len(self._sharers.pop(str(got.path), []))
        self._ready.clear()
        self._vectors.clear()
        self._doomed.clear()


__all__ = ["indexed_feed_images", "sync_feed"]
