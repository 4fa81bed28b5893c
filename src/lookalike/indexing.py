"""Bringing an index up to date with a folder: embed what is new or changed, drop what is gone,
recognise moved files by content hash, and commit in small atomic steps so that a killed run
loses at most the batch in flight and a re-run picks up where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.catalog_records import ImageRecord, NewImage
from lookalike.decoding import WorkerPool
from lookalike.embedders.base import Embedder
from lookalike.errors import InvalidInputError
from lookalike.index_options import (
    IndexOptions,
    IndexProgress,
    IndexReport,
    ProgressCallback,
    SkippedFile,
)
from lookalike.sources import ImageFile, scan_folder
from lookalike.store import IndexStore
from lookalike.vector_ingest import Queued, embed_and_commit

#: The option and report types moved to :mod:`lookalike.index_options`; importable here as before.
__all__ = [
    "IndexOptions",
    "IndexProgress",
    "IndexReport",
    "ProgressCallback",
    "SkippedFile",
    "reembed",
    "sync_files",
    "sync_folder",
]


@dataclass
class _Plan:
    unchanged: int = 0
    renamed: int = 0
    copied: int = 0
    to_embed: list[Queued] = field(default_factory=list)
    missing: dict[str, ImageRecord] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)
    #: Segments whose file is missing or damaged: their images count as changed.
    broken: set[int] = field(default_factory=set)


def sync_folder(
    store: IndexStore,
    embedder: Callable[[], Embedder],
    root: Path,
    *,
    options: IndexOptions,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Make the index hold exactly the readable images under ``root`` (other folders untouched)."""
    started = time.perf_counter()
    files = list(scan_folder(root))
    known = store.catalog.under(str(root.expanduser().resolve()))
    return _sync(store, embedder, files, known, options, progress, started)


def sync_files(
    store: IndexStore,
    embedder: Callable[[], Embedder],
    paths: Sequence[Path | str],
    *,
    options: IndexOptions,
    progress: ProgressCallback | None = None,
    root: Path | None = None,
) -> IndexReport:
    """Index these image files (new or changed ones are embedded), touching nothing else: for
    adding a few files without walking their folder. They get no label, or with ``root`` the
    label indexing ``root`` would give them (the first folder below it)."""
    started = time.perf_counter()
    base = root.expanduser().resolve() if root is not None else None
    files = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            raise InvalidInputError(f"{raw}: no such image file; pass files that exist")
        stat = path.stat()
        files.append(ImageFile(str(path), stat.st_size, stat.st_mtime_ns, _label(path, base)))
    found = ((f.path, store.catalog.by_path(f.path)) for f in files)
    known = {path: record for path, record in found if record is not None}
    return _sync(store, embedder, files, known, options, progress, started)


def _label(path: Path, root: Path | None) -> str | None:
    """The first folder below ``root`` holding ``path`` (as ``scan_folder`` labels files)."""
    if root is None or not path.is_relative_to(root):
        return None
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def _sync(
    store: IndexStore,
    embedder: Callable[[], Embedder],
    files: list[ImageFile],
    known: dict[str, ImageRecord],
    options: IndexOptions,
    progress: ProgressCallback | None,
    started: float,
) -> IndexReport:
    """Bring ``known`` (records) in line with ``files``: records without a file are dropped."""
    notify = progress or (lambda event: None)
    notify(IndexProgress("scan", len(files), len(files)))
    plan = _Plan(
        missing={p: r for p, r in known.items()}, broken=set(store.damaged_segments(contents=False))
    )
    changed: list[tuple[ImageFile, ImageRecord | None]] = []
    for f in files:
        record = plan.missing.pop(f.path, None)
        if (
            record is not None
            and record.size == f.size
            and record.mtime_ns == f.mtime_ns
            and record.segment not in plan.broken
        ):
            plan.unchanged += 1
        else:
            changed.append((f, record))

    with WorkerPool(options.workers) as pool:
        hashes: list[str | None] = []
        for h in pool.hash(f.path for f, _ in changed):
            hashes.append(h)
            if len(hashes) % 256 == 0:
                notify(IndexProgress("hash", len(hashes), len(changed)))
        notify(IndexProgress("hash", len(hashes), len(changed)))
        _resolve_without_embedding(store, plan, changed, hashes)
        embedded, replaced_failed = embed_and_commit(
            store, embedder, plan.to_embed, plan.skipped, pool, options, notify
        )

    still_broken = store.release_segments(plan.broken)
    if store.needs_compaction() and not still_broken:
        notify(IndexProgress("compact", 0, 1))
        store.compact()
        notify(IndexProgress("compact", 1, 1))
    updated = sum(1 for _, record, _ in plan.to_embed if record is not None) - replaced_failed
    return IndexReport(
        added=embedded - updated + plan.copied,
        updated=updated,
        renamed=plan.renamed,
        unchanged=plan.unchanged,
        removed=len(plan.missing) + replaced_failed,
        skipped=tuple(plan.skipped),
        embedded=embedded,
        seconds=time.perf_counter() - started,
    )


def _resolve_without_embedding(
    store: IndexStore,
    plan: _Plan,
    changed: list[tuple[ImageFile, ImageRecord | None]],
    hashes: list[str | None],
) -> None:
    """One transaction: drop deleted files, follow renames, re-stamp touched files, and share
    the vector of identical content already indexed. Whatever needs the network is queued."""
    catalog = store.catalog
    with catalog.transaction():
        for (f, record), digest in zip(changed, hashes, strict=True):
            if digest is None:
                plan.skipped.append(SkippedFile(f.path, "cannot read file"))
                continue
            if record is not None and record.hash == digest and record.segment not in plan.broken:
                catalog.move(
                    record.id, path=f.path, size=f.size, mtime_ns=f.mtime_ns, label=f.label
                )
                plan.unchanged += 1
                continue
            twins = [
                t
                for t in (catalog.by_hash(digest) if record is None else [])
                if t.segment not in plan.broken
            ]
            moved = next((t for t in twins if t.path in plan.missing), None)
            if moved is None:
                moved = next((t for t in twins if not Path(t.path).exists()), None)
            if moved is not None:
                plan.missing.pop(moved.path, None)
                catalog.move(moved.id, path=f.path, size=f.size, mtime_ns=f.mtime_ns, label=f.label)
                plan.renamed += 1
            elif twins:
                twin = twins[0]
                catalog.insert(
                    [NewImage(f.path, f.size, f.mtime_ns, digest, f.label, twin.segment, twin.row)]
                )
                plan.copied += 1
            else:
                plan.to_embed.append((f, record, digest))
        catalog.delete(r.id for r in plan.missing.values())


def reembed(
    store: IndexStore,
    embedder: Callable[[], Embedder],
    records: list[ImageRecord],
    *,
    options: IndexOptions,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Embed these indexed images again from their files (their vectors are lost or damaged),
    keeping their paths, labels and metadata. Images whose file is gone or unreadable are
    removed: their vectors cannot be recovered (``removed`` counts them)."""
    started = time.perf_counter()
    notify = progress or (lambda event: None)
    plan = _Plan()
    with WorkerPool(options.workers) as pool:
        hashes = list(pool.hash(r.path for r in records))
        notify(IndexProgress("hash", len(hashes), len(records)))
        for record, digest in zip(records, hashes, strict=True):
            try:
                stat = Path(record.path).stat() if digest is not None else None
            except OSError:
                stat = None
            if stat is None or digest is None:
                plan.missing[record.path] = record
                plan.skipped.append(SkippedFile(record.path, "file gone or unreadable"))
                continue
            found = ImageFile(record.path, stat.st_size, stat.st_mtime_ns, record.label)
            plan.to_embed.append((found, record, digest))
        with store.catalog.transaction():
            store.catalog.delete(r.id for r in plan.missing.values())
        embedded, failed = embed_and_commit(
            store, embedder, plan.to_embed, plan.skipped, pool, options, notify
        )
    return IndexReport(
        added=0,
        updated=embedded,
        renamed=0,
        unchanged=0,
        removed=len(plan.missing) + failed,
        skipped=tuple(plan.skipped),
        embedded=embedded,
        seconds=time.perf_counter() - started,
    )
