"""The server's one SearchEngine, shared by request threads, and its one writer.

Search is CPU-bound on an ordinary machine, so embedding and searching run one request at a
time under a lock (with NumPy's BLAS on one thread: its idle threads spin between the server's
many small products and took a core from decoding); uploads are decoded before it, through
the query pipeline's decode stage, with their own (lower) pixel limit and at most
``decode_slots`` at once: decoding is where an upload costs memory, so the number of decodes,
not of requests, bounds the server's memory.
With micro-batching on (``batch_wait`` > 0, the default), uploads announce themselves before
they are decoded and the searches of concurrent requests run together, their images through
the network in one batch (web/micro_batching.py, query/batch_search.py): a lone request goes at
once, and each request gets what it would get searched alone. Only the stages after the network
take the lock. With ``batch_workers`` > 1, that many batches may be in the network at once, a
batch that starts while another runs on a one-thread instance of it (threads of one network
call wait on each other, and on two busy cores they waited for decoding); measured on 2 cores
with 20 clients, two workers gave 0-25 % more requests/s than one but a 23-36 % worse p99 (a
one-thread batch takes longer), so one is the default.
The engine reloads its vectors when another process (`lookalike index`) commits, so readers
always see the last committed state. Writes (with --allow-writes) run one at a time inside the
process, each through an IndexWriter that shares the engine's model and holds the index's lock
only while it writes: the server never competes with itself for the lock, `lookalike index`
can still update a served index between writes, and the model is never rebuilt for a write.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.keep_rules import parse_rules
from lookalike.duplicates.plan import Plan, make_plan
from lookalike.duplicates.report import DuplicateOptions, DuplicateReport
from lookalike.durable import write_bytes
from lookalike.embedders.base import Embedder
from lookalike.engine import SearchEngine
from lookalike.explain import Explanation
from lookalike.explain.explainer import upload_key
from lookalike.explain.views import ImageView
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.index_options import IndexOptions
from lookalike.layout import IndexLayout
from lookalike.matches import SearchResult
from lookalike.query import DecodedQueries, Query
from lookalike.query.batch_search import Outcome, SearchRequest, search_requests
from lookalike.query.embedding import embed_pixels
from lookalike.region import Box, Region
from lookalike.search_options import SearchOptions
from lookalike.sources import IMAGE_EXTENSIONS
from lookalike.web.micro_batching import MicroBatcher
from lookalike.web.paths import public_path
from lookalike.web.settings import ServeSettings
from lookalike.web.thumbnails import Thumbnailer
from lookalike.writer import IndexWriter

UPLOAD_NAME = "<uploaded image>"
T = TypeVar("T")


class ServerBusyError(Exception):
    """Every decode slot stayed busy for the whole wait: the client should retry later."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the server is busy decoding other uploads (waited {wait:g} s); retry")


class SearchService:
    def __init__(self, settings: ServeSettings) -> None:
        from threadpoolctl import ThreadpoolController

        self.settings = settings
        self.engine = SearchEngine.open(settings.index, threads=settings.threads)
        self.thumbnails = Thumbnailer(settings.index)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        slots = settings.decode_slots or os.cpu_count() or 1
        self._decode_slots = threading.BoundedSemaphore(slots)
        # Decodes run on these few threads, not on whichever request thread got the upload:
        # a decode's large buffers are then freed into a few malloc arenas instead of one per
        # request thread (dozens), which kept ~150 MB each after a storm of large uploads.
        self._decoders = ThreadPoolExecutor(slots, thread_name_prefix="decode")
        self.batcher: MicroBatcher[SearchRequest, list[SearchResult]] | None = None
        self._in_flight = 0  # batches in the network or searching now
        #: Batches that started while another ran (on the one-thread network): for tests and
        #: benchmarks.
        self.overlapping_batches = 0
        self._flight = threading.Lock()
        self._one_thread: Embedder | None = None  # made by warm() or the first batch needing it
        self._one_thread_lock = threading.Lock()
        if settings.batch_wait > 0:
            self.batcher = MicroBatcher(
                self._search_together,
                max_batch=settings.max_batch,
                wait=settings.batch_wait,
                weight=len,
                name="search-batcher",
                workers=settings.batch_workers,
            )
        # Process-wide while the server runs; undone by close() (tests run servers in-process).
        self._blas = ThreadpoolController().limit(limits=1, user_api="blas")

    def warm(self) -> None:
        """Load the model and the vectors before the first request, and run the network once."""
        with self._lock:
            model = self.engine.embedder
            height, width = model.input_spec.shape_for(4, 3)  # the commonest photo shape
            model.embed(np.zeros((1, height, width, 3), dtype=np.uint8))
            if self.batcher is not None and self.settings.batch_workers > 1:
                self._one_thread_embedder().embed(np.zeros((1, height, width, 3), dtype=np.uint8))
            if self.engine.search_index_type() == "hnsw":
                self.engine.ann_index()
            else:
                self.engine.vector_index()

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self._decoders.shutdown(wait=True)
        with self._write_lock:
            self.engine.close()
        self._blas.restore_original_limits()

    def search_upload(
        self, data: bytes, options: SearchOptions, *, box: Box | None = None
    ) -> tuple[SearchResult, float]:
        (result,), seconds = self.search_uploads([(UPLOAD_NAME, data)], options, box=box)
        return result, seconds

    def search_uploads(
        self, uploads: Sequence[tuple[str, bytes]], options: SearchOptions, *, box: Box | None
    ) -> tuple[list[SearchResult], float]:
        """Search with each upload (its name, its bytes; ``box``: that region of each), the
        uploads decoded in parallel in the decode slots, searched in one batch (together with
        other requests' when micro-batching is on); results in order."""
        started = time.perf_counter()
        if self.batcher is None:
            decoded = DecodedQueries.join(self._decode_uploads(uploads, options.verify, box))
            with self._lock:
                results = self.engine.pipeline.search_decoded(decoded, options)
            return results, time.perf_counter() - started
        with self.batcher.announce() as arrival:
            decoded = DecodedQueries.join(self._decode_uploads(uploads, options.verify, box))
            answer = arrival.submit(SearchRequest(decoded, options))
        return answer.result(), time.perf_counter() - started

    def _search_together(self, requests: Sequence[SearchRequest]) -> list[Outcome]:
        """The micro-batcher's work: concurrent requests' searches, run together; the network
        outside the lock, on the one-thread instance unless no other batch is running."""
        with self._flight:
            self._in_flight += 1
            alone = self._in_flight == 1
            self.overlapping_batches += not alone
        try:
            model = self.engine.embedder if alone else self._one_thread_embedder()
            return search_requests(
                self.engine.pipeline,
                requests,
                embed=lambda decoded: embed_pixels(model, decoded.pixels),
                searching=self._lock,
            )
        finally:
            with self._flight:
                self._in_flight -= 1

    def _one_thread_embedder(self) -> Embedder:
        """Another instance of the index's network, on one thread (made once)."""
        if self._one_thread is None:
            with self._one_thread_lock:
                if self._one_thread is None:
                    self._one_thread = self.engine.another_embedder(threads=1)
        return self._one_thread

    def search_id(
        self, image_id: int, options: SearchOptions, *, box: Box | None = None
    ) -> tuple[SearchResult, float]:
        started = time.perf_counter()
        pipeline = self.engine.pipeline
        if box is not None:  # the region of its file is decoded in a slot, like an upload
            with self._lock:
                record, _ = self.engine.record(image_id)
            name = self.shown(record.path, record.label)
            region = Region(record.path, box)
            decoded = self._decode(region, name, DEFAULT_MAX_PIXELS, options.verify)
            with self._lock:
                (result,) = pipeline.search_regions(decoded, [image_id], options)
            return replace(result, query=record.path), time.perf_counter() - started
        with self._lock:
            (result,) = pipeline.search_ids([image_id], options)
        return result, time.perf_counter() - started

    def search_product(self, product_id: str, options: SearchOptions) -> tuple[SearchResult, float]:
        started = time.perf_counter()
        with self._lock:
            (result,) = self.engine.pipeline.search_products([product_id], options)
        return result, time.perf_counter() - started

    def shown(self, path: str, label: str | None) -> str:
        """A file path as answers show it: relative to the indexed folder unless --show-paths."""
        if self.settings.show_paths:
            return path
        return public_path(path, label, self.settings.index)

    def explain_upload(
        self, data: bytes, result_id: int, *, box: Box | None, overlays: bool
    ) -> tuple[Explanation, float]:
        """Heatmaps of an uploaded query (or its ``box``) and an indexed result. The query's
        feature map is cached by the upload's hash and box: the page's next result costs
        no decode and no network run on the query."""
        started = time.perf_counter()
        explainer = self.engine.explainer
        explainer.spatial()  # refuse an embedder without a feature map before decoding
        key = upload_key(data, box)
        query: bytes | ImageView = data
        if not explainer.cached(key):
            query = self._decode_for_explanation(data, box)
        with self._lock:
            explanation = explainer.explain(query, result_id, box=box, overlays=overlays, key=key)
        return explanation, time.perf_counter() - started

    def explain_ids(
        self, query_id: int, result_id: int, *, box: Box | None, overlays: bool
    ) -> tuple[Explanation, float]:
        started = time.perf_counter()
        with self._lock:
            explanation = self.engine.explain_ids(query_id, result_id, box=box, overlays=overlays)
        return explanation, time.perf_counter() - started

    def explainable(self) -> bool:
        with self._lock:
            return self.engine.explainable()

    def record(self, image_id: int) -> tuple[ImageRecord, dict[str, object]]:
        with self._lock:
            return self.engine.record(image_id)

    def info(self) -> tuple[dict[str, object], dict[str, int], list[str]]:
        with self._lock:
            return self.engine.info().to_json(), self.engine.labels(), self.engine.numeric_fields()

    def count(self) -> int:
        with self._lock:
            return len(self.engine)

    def duplicates(
        self,
        rules: Sequence[str],
        *,
        include_similar: bool,
        keepers: Sequence[int] = (),
        threshold: float | None = None,
    ) -> tuple[DuplicateReport, Plan]:
        """A duplicate scan of the index and its plan by ``rules`` (and the user's keepers)."""
        ordered = parse_rules(rules)  # a bad rule is refused before the scan
        options = DuplicateOptions(include_similar=include_similar, threshold=threshold)
        with self._lock:
            report = self.engine.find_duplicates(options)
        plan = make_plan(report, ordered, keepers=keepers, index=self.settings.index.resolve())
        return report, plan

    def dismiss(self, first: int, second: int) -> bool:
        """Record that two images are not duplicates (see ``SearchEngine.dismiss_pair``)."""
        with self._write_lock, self._writer() as writer:
            return writer.dismiss_pair(first, second)

    def add_upload(self, data: bytes, filename: str) -> int:
        """Store an uploaded image under INDEX_DIR/uploads and index it; returns its id."""
        suffix = Path(filename).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            suffix = ".jpg"
        self._decode_upload(data, filename)  # refuse non-images before storing
        folder = IndexLayout(self.settings.index).uploads
        # Named by content: the same image uploaded twice is one file and one indexed image.
        target = folder / f"{hashlib.blake2b(data, digest_size=16).hexdigest()}{suffix}"
        with self._write_lock, self._writer() as writer:  # refused while another process writes
            folder.mkdir(exist_ok=True)
            created = not target.exists()
            if created:
                write_bytes(target, data)
            try:
                writer.index_files([target], options=IndexOptions(workers=0))
            except BaseException:
                if created:  # nothing of a refused upload stays behind
                    target.unlink(missing_ok=True)
                raise
        with self._lock:
            return self.engine.record_by_path(str(target.resolve())).id

    def remove(self, image_id: int) -> None:
        with self._lock:
            record, _ = self.engine.record(image_id)
        uploads = IndexLayout(self.settings.index).uploads.resolve()
        with self._write_lock, self._writer() as writer:
            writer.remove([record.path])
            path = Path(record.path)
            # An uploaded image lives only in uploads/: removing it removes its file, so that a
            # later sync of the folder cannot bring it back. Indexed user files are never touched.
            if path.parent == uploads:
                path.unlink(missing_ok=True)

    def _decode_upload(
        self, data: bytes, name: str, *, verify: bool = False, box: Box | None = None
    ) -> DecodedQueries:
        """Decode an untrusted upload (or the region ``box`` of it) in a decode slot."""
        query = data if box is None else Region(data, box)
        return self._decode(query, name, self.settings.max_upload_pixels, verify)

    def _decode_uploads(
        self, uploads: Sequence[tuple[str, bytes]], verify: bool, box: Box | None
    ) -> list[DecodedQueries]:
        """Untrusted uploads decoded in parallel, each in one of the bounded decode slots."""
        pipeline = self.engine.pipeline
        limit = self.settings.max_upload_pixels

        def decoding(name: str, data: bytes) -> Callable[[], DecodedQueries]:
            query = data if box is None else Region(data, box)
            return lambda: pipeline.decode([query], names=[name], max_pixels=limit, verify=verify)

        started = [self._start_decode(decoding(name, data)) for name, data in uploads]
        return [future.result() for future in started]

    def _decode(self, query: Query, name: str, max_pixels: int, verify: bool) -> DecodedQueries:
        """Decode one query (an untrusted upload, or a region of an indexed file) in one of the
        bounded decode slots (with what copy mode needs when ``verify``)."""
        return self._in_decode_slot(
            lambda: self.engine.pipeline.decode(
                [query], names=[name], max_pixels=max_pixels, verify=verify
            )
        )

    def _decode_for_explanation(self, data: bytes, box: Box | None) -> ImageView:
        """An upload decoded for an explanation, in one of the bounded decode slots."""
        return self._in_decode_slot(
            lambda: self.engine.explainer.decode(
                data, box=box, max_pixels=self.settings.max_upload_pixels, name=UPLOAD_NAME
            )
        )

    def _in_decode_slot(self, decode: Callable[[], T]) -> T:
        """Run ``decode`` on a decode thread once a slot is free (busy error after the wait)."""
        return self._start_decode(decode).result()

    def _start_decode(self, decode: Callable[[], T]) -> Future[T]:
        """Start ``decode`` on a decode thread once a slot is free (busy error after the
        wait); the slot is freed when it ends."""
        wait = self.settings.decode_wait
        if not self._decode_slots.acquire(timeout=wait):
            raise ServerBusyError(wait)
        try:
            future = self._decoders.submit(decode)
        except BaseException:
            self._decode_slots.release()
            raise
        future.add_done_callback(lambda _: self._decode_slots.release())
        return future

    def _writer(self) -> IndexWriter:
        """A writer sharing the engine's model, holding the index's lock until closed."""
        return IndexWriter.open(self.settings.index, self.engine.model)
