"""``FolderWatcher``: keeps an index in step with a folder while files come, change and go.

Filesystem events (see ``events.py``) mark paths as changed; once a file is complete (see
``changes.py``) it is indexed in a batch through ``IndexWriter.index_files`` and gone paths are
removed through ``IndexWriter.remove``, the same crash-safe commits as ``lookalike index``: a
moved file is found again by its content hash and keeps its vector. A full rescan of the folder
(``IndexWriter.index_folder``) runs at start and every ``WatchOptions.rescan`` seconds, to catch
what events miss (a full event queue, a folder not watched yet, changes while nothing ran).

The writer's lock is taken for each batch only, so other writers (``lookalike index``, a
server with ``--allow-writes``) can work between batches; while one holds it, batches wait.
The index's own options (embedder, index type, re-ranking) are used as they are recorded.
:meth:`FolderWatcher.stop` (safe from a signal handler) ends :meth:`FolderWatcher.run` after
the batch in flight is committed; a rescan in flight stops early, keeping what it committed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lookalike.errors import IndexLockedError, InvalidInputError
from lookalike.index_model import IndexModel
from lookalike.index_options import IndexOptions, IndexProgress, IndexReport, SkippedFile
from lookalike.layout import IndexLayout
from lookalike.sources import check_folder, scan_folder
from lookalike.store import IndexStore
from lookalike.watching.changes import PendingChanges, ReadyChanges, fingerprint
from lookalike.watching.events import FolderEvents, Note
from lookalike.watching.options import WatchOptions
from lookalike.watching.report import WatchBatch, WatchSummary
from lookalike.writer import IndexWriter

BatchCallback = Callable[[WatchBatch], None]

#: Batches this small decode in the watching process (no worker pool to start).
_IN_PROCESS = 32
#: Longest sleep of the loop, so a stop request is seen soon.
_TICK = 0.1
#: Why a linked file is not taken from events.
_LINKED = "a symbolic link (or under one): indexed by the rescans, under the link's path"
#: Seconds before a batch refused by another writer's lock is tried again.
_RETRY = 1.0


class _StopRequestedError(Exception):
    """Raised from a rescan's progress callback once a stop was asked for."""


class FolderWatcher:
    """Watches ``folder`` and keeps the index in ``index_dir`` in step with it (the index is
    created with the default embedder if missing). ``on_batch`` hears of every commit.

    Example:
        >>> watcher = FolderWatcher("photos/", "photos.idx", on_batch=print)  # doctest: +SKIP
        >>> summary = watcher.run()  # until watcher.stop(), e.g. from a signal handler
    """

    def __init__(
        self,
        folder: Path | str,
        index_dir: Path | str,
        *,
        options: WatchOptions | None = None,
        on_batch: BatchCallback | None = None,
        threads: int | None = None,
    ) -> None:
        self.root = check_folder(folder)
        self.index_dir = Path(index_dir)
        self.options = options or WatchOptions()
        self._on_batch = on_batch or (lambda batch: None)
        self._threads = threads
        self._pending = PendingChanges(quiet=self.options.quiet, settle=self.options.settle)
        self._events = FolderEvents(self.root)
        self._stopping = False
        self._busy = False
        self._totals = dict.fromkeys(("added", "updated", "moved", "removed", "skipped"), 0)
        self._batches = 0
        self._rescans = 0

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in flight (only sets a flag: safe from a
        signal handler and from another thread)."""
        self._stopping = True

    def run(self) -> WatchSummary:
        """Watch until :meth:`stop`; the rescan at start runs first (events are watched from
        before it, so nothing changed meanwhile is missed)."""
        started = time.monotonic()
        self._ensure_index()
        model_store = IndexStore.open(self.index_dir)
        model = IndexModel(model_store, threads=self._threads)
        interrupted = False
        try:
            self._events.start()
            rescanned = self._rescan(model)  # False: another writer holds the lock for now
            if not self._stopping:
                model()  # built now, so the first file to arrive does not wait for it
            self._loop(model, rescan_owed=not rescanned)
        except _StopRequestedError:
            interrupted = True
        finally:
            self._events.stop()
            model_store.close()
        return WatchSummary(
            batches=self._batches,
            rescans=self._rescans,
            seconds=time.monotonic() - started,
            interrupted=interrupted,
            **self._totals,
        )

    def _ensure_index(self) -> None:
        if not IndexLayout(self.index_dir).is_index():
            from lookalike.engine import SearchEngine

            SearchEngine.create(self.index_dir, threads=self._threads).close()

    def _loop(self, model: IndexModel, *, rescan_owed: bool) -> None:
        every = self.options.rescan
        never = float("inf")
        next_rescan = time.monotonic() + (0.0 if rescan_owed else every if every > 0 else never)
        while not self._stopping:
            now = time.monotonic()
            for note in self._events.drain():
                self._take(note, now)
            ready = self._pending.take_ready(now, self.options.max_batch)
            if ready:
                self._apply(ready, model)
                continue
            if now >= next_rescan and not len(self._pending):
                if self._rescan(model):
                    next_rescan = time.monotonic() + every if every > 0 else never
                else:
                    next_rescan = time.monotonic() + _RETRY
                continue
            due = self._pending.next_due(now)
            wake = min(due if due is not None else float("inf"), next_rescan)
            self._events.arrived.wait(min(_TICK, max(0.005, wake - now)))

    def _take(self, note: Note, now: float) -> None:
        pending = self._pending
        if note.kind == "removed":
            pending.removed(note.path, now, folder=note.folder)
        elif note.folder:  # a folder created or moved in: its files as they are now
            for found in _files_under(note.path):
                if note.kind == "closed":
                    pending.closed(found, now)
                else:
                    pending.written(found, now)
        elif note.kind == "written":
            pending.written(note.path, now)
        elif note.kind == "closed":
            pending.closed(note.path, now)
        else:
            pending.touched(note.path, now)

    def _open_writer(self, model: IndexModel) -> IndexWriter | None:
        try:
            writer = IndexWriter.open(self.index_dir, model)
        except IndexLockedError:
            if not self._busy:
                self._on_batch(WatchBatch("events", busy=True))
            self._busy = True
            return None
        self._busy = False
        return writer

    def _apply(self, ready: ReadyChanges, model: IndexModel) -> None:
        """Index the ready files and remove the gone paths: one batch (one commit each)."""
        started = time.monotonic()
        writer = self._open_writer(model)
        if writer is None:
            self._requeue(ready, time.monotonic() + _RETRY)
            return
        with writer:
            files = [p for p in ready.files if Path(p).is_file()]
            files += [p for p in ready.gone if Path(p).is_file()]  # deleted, then back
            # Indexing a file resolves links, a folder scan keeps the link's own path: links
            # are left to the rescans, so an image is never indexed under both.
            links = [SkippedFile(p, _LINKED) for p in files if Path(p).resolve() != Path(p)]
            files = [p for p in files if Path(p).resolve() == Path(p)]
            taken = {path: fingerprint(path) for path in files}
            workers = 0 if len(files) <= _IN_PROCESS else self.options.workers
            options = IndexOptions(workers=workers, commit_every=max(1, len(files)))
            try:
                # The saved graph catches up at the next rescan: saving a large one per batch
                # would cost seconds, and readers add the new images to it in memory.
                report = writer.index_files(
                    files, options=options, root=self.root, sync_graph=False
                )
            except InvalidInputError:  # a file went away while the batch started
                self._requeue(ready, time.monotonic())
                return
            gone = [p for p in (*ready.files, *ready.gone) if not Path(p).exists()]
            known = _indexed(writer, gone)
            removed = writer.remove(known) if known else 0
        for skipped in report.skipped:  # still being written: try again once it is done
            if fingerprint(skipped.path) != taken.get(skipped.path):
                self._pending.written(skipped.path, time.monotonic())
        batch = _batch("events", report, removed, tuple(files), time.monotonic() - started)
        self._report(replace(batch, skipped=batch.skipped + tuple(links)))

    def _rescan(self, model: IndexModel) -> bool:
        """The whole folder through the folder sync; False where the index was busy."""
        started = time.monotonic()
        writer = self._open_writer(model)
        if writer is None:
            return False
        with writer:
            options = IndexOptions(workers=self.options.workers)
            report = writer.index_folder(self.root, options=options, progress=self._check_stop)
        self._rescans += 1
        self._report(_batch("rescan", report, 0, (), time.monotonic() - started))
        return True

    def _check_stop(self, event: IndexProgress) -> None:
        if self._stopping and event.phase in ("hash", "embed"):
            raise _StopRequestedError

    def _requeue(self, ready: ReadyChanges, when: float) -> None:
        for path in ready.files:
            self._pending.closed(path, when)
        for path in ready.gone:
            self._pending.removed(path, when)

    def _report(self, batch: WatchBatch) -> None:
        if batch.trigger == "events" or batch.changed:
            self._batches += 1
        for name in ("added", "updated", "moved", "removed"):
            self._totals[name] += getattr(batch, name)
        self._totals["skipped"] += len(batch.skipped)
        self._on_batch(batch)


def _batch(
    trigger: str, report: IndexReport, removed: int, paths: tuple[str, ...], seconds: float
) -> WatchBatch:
    return WatchBatch(
        trigger,
        added=report.added,
        updated=report.updated,
        moved=report.renamed,
        removed=report.removed + removed,
        skipped=report.skipped,
        paths=paths,
        seconds=seconds,
    )


def _files_under(folder: str) -> list[str]:
    try:
        return [found.path for found in scan_folder(folder)]
    except InvalidInputError:  # gone again already
        return []


def _indexed(writer: IndexWriter, gone: list[str]) -> list[str]:
    """The gone paths the index holds: files, or folders with indexed files under them."""
    if not gone:
        return []
    paths = {record.path for record in writer.collection.snapshot().records.values()}
    known = []
    for path in gone:
        prefix = path.rstrip(os.sep) + os.sep
        if path in paths or any(p.startswith(prefix) for p in paths):
            known.append(path)
    return known
