"""Bringing an index up to date with a folder: embed what is new or changed, drop what is gone,
recognise moved files by content hash, and commit in small atomic steps so that a killed run
loses at most the batch in flight and a re-run picks up where it stopped."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageEntry, ImageRecord, NewImage
from lookalike.decoding import WorkerPool
from lookalike.embedders.base import Embedder
from lookalike.errors import InvalidInputError
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.indexes.registry import resolve_index_type
from lookalike.sources import ImageFile, scan_folder
from lookalike.store import IndexStore


@dataclass(frozen=True)
class IndexProgress:
    """A progress event: ``phase`` is 'scan', 'hash', 'embed' or 'compact'."""

    phase: str
    done: int
    total: int


ProgressCallback = Callable[[IndexProgress], None]


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


#: (field, smallest allowed value) of the numeric options; None always means "the default".
_OPTION_MINIMUMS = (
    ("workers", 0),
    ("batch_size", 1),
    ("commit_every", 1),
    ("max_pixels", 1),
    ("pca_dim", 0),
    ("rerank", 0),
)


@dataclass(frozen=True)
class IndexOptions:
    """How to index. ``index_type`` (auto, exact, hnsw), and for hnsw ``pca_dim`` (0: none),
    ``whiten`` and ``rerank`` (graph candidates re-scored with the full vectors), change the
    search structure kept beside the vectors; None keeps what the index has."""

    workers: int | None = None
    batch_size: int = 32
    commit_every: int = 512
    max_pixels: int = DEFAULT_MAX_PIXELS
    index_type: str | None = None
    pca_dim: int | None = None
    whiten: bool | None = None
    rerank: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        for name, low in _OPTION_MINIMUMS:
            value = getattr(self, name)
            if value is not None and value < low:
                fix = "0 (none) or more" if low == 0 else f"at least {low}"
                raise InvalidInputError(f"IndexOptions.{name} must be {fix}, got {value!r}")
        if self.index_type is not None:
            try:
                resolve_index_type(self.index_type)
            except InvalidInputError as exc:
                raise InvalidInputError(f"IndexOptions.index_type: {exc}") from None


@dataclass(frozen=True)
class IndexReport:
    """What one run of indexing did."""

    added: int
    updated: int
    renamed: int
    unchanged: int
    removed: int
    skipped: tuple[SkippedFile, ...]
    embedded: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Plan:
    unchanged: int = 0
    renamed: int = 0
    copied: int = 0
    to_embed: list[tuple[ImageFile, ImageRecord | None, str]] = field(default_factory=list)
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
) -> IndexReport:
    """Index these image files (new or changed ones are embedded), touching nothing else: for
    adding a few files without walking their folder. They get no label."""
    started = time.perf_counter()
    files = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            raise InvalidInputError(f"{raw}: no such image file; pass files that exist")
        stat = path.stat()
        files.append(ImageFile(str(path), stat.st_size, stat.st_mtime_ns, None))
    found = ((f.path, store.catalog.by_path(f.path)) for f in files)
    known = {path: record for path, record in found if record is not None}
    return _sync(store, embedder, files, known, options, progress, started)


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
    plan = _Plan(missing={p: r for p, r in known.items()}, broken=set(store.damaged_segments()))
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
        embedded, replaced_failed = _embed_and_commit(store, embedder, plan, pool, options, notify)

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


Outcome = tuple[int, "npt.NDArray[np.float32] | None", "str | None"]


def _local_vectors(
    paths: list[str], embedder: Embedder, pool: WorkerPool, options: IndexOptions
) -> Iterator[Outcome]:
    """(position, vector, None) or (position, None, reason) for every path, in order: decoding
    in the worker processes, the network in large batches here."""
    pixels: list[npt.NDArray[np.uint8]] = []
    positions: list[int] = []
    decoded = pool.decode(paths, embedder.input_spec, max_pixels=options.max_pixels)
    for position, outcome in enumerate(decoded):
        if outcome.pixels is None:
            yield position, None, outcome.error or "cannot decode"
            continue
        pixels.append(outcome.pixels)
        positions.append(position)
        if len(pixels) >= options.batch_size:
            yield from zip(
                positions, embedder.embed(np.stack(pixels)), [None] * len(pixels), strict=True
            )
            pixels.clear()
            positions.clear()
    if pixels:
        yield from zip(
            positions, embedder.embed(np.stack(pixels)), [None] * len(pixels), strict=True
        )


def _ray_vectors(
    paths: list[str], embedder: Embedder, options: IndexOptions, shard_dir: Path
) -> Iterator[Outcome]:
    """Vectors from a Ray cluster, which writes them as shard files under ``shard_dir``; the
    shards of a run are deleted once every vector has been received."""
    from lookalike.distributed.ray_embedding import embed_with_ray

    assert options.ray_address is not None
    try:
        yield from embed_with_ray(
            paths,
            embedder.spec,
            address=options.ray_address,
            shard_dir=shard_dir,
            batch_size=options.batch_size,
            max_pixels=options.max_pixels,
            workers=options.workers or 2,
        )
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)


def _embed_and_commit(
    store: IndexStore,
    make_embedder: Callable[[], Embedder],
    plan: _Plan,
    pool: WorkerPool,
    options: IndexOptions,
    notify: ProgressCallback,
) -> tuple[int, int]:
    """Embed the queued files; returns (embedded, old records dropped because the file broke).

    Vectors come from the local pipeline or from a Ray cluster (in any order); either way they
    are committed in atomic steps of ``commit_every`` images."""
    total = len(plan.to_embed)
    if total == 0:
        return 0, 0
    embedder = make_embedder()
    vectors: list[npt.NDArray[np.float32]] = []
    ready: list[tuple[ImageFile, ImageRecord | None, str]] = []
    dropped: list[int] = []
    embedded = 0

    def commit() -> None:
        nonlocal embedded
        if not ready and not dropped:
            return
        with store.catalog.transaction():
            if ready:
                replaced = [r.id for _, r, _ in ready if r is not None]
                kept = store.catalog.metadata(replaced)  # re-embedding keeps a file's metadata
                store.catalog.delete(replaced)
                new_ids = store.append(
                    np.stack(vectors).astype(np.float32, copy=False),
                    [
                        ImageEntry(f.path, f.size, f.mtime_ns, digest, f.label)
                        for f, _, digest in ready
                    ],
                )
                store.catalog.set_metadata(
                    (new, kept[r.id])
                    for (_, r, _), new in zip(ready, new_ids, strict=True)
                    if r is not None and r.id in kept
                )
            store.catalog.delete(dropped)
        embedded += len(ready)
        dropped.clear()
        vectors.clear()
        ready.clear()

    dropped_total = 0
    paths = [f.path for f, _, _ in plan.to_embed]
    if options.ray_address is not None:
        shards = store.layout.shard_run(uuid.uuid4().hex)
        outcomes = _ray_vectors(paths, embedder, options, shards)
    else:
        outcomes = _local_vectors(paths, embedder, pool, options)
    for done, (position, vector, error) in enumerate(outcomes, start=1):
        item = plan.to_embed[position]
        if vector is None:
            plan.skipped.append(SkippedFile(item[0].path, error or "cannot decode"))
            if item[1] is not None:
                dropped.append(item[1].id)
                dropped_total += 1
        else:
            vectors.append(vector)
            ready.append(item)
        if done % options.batch_size == 0:
            notify(IndexProgress("embed", done, total))
        if len(ready) >= options.commit_every:
            commit()
    commit()
    notify(IndexProgress("embed", total, total))
    return embedded, dropped_total


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
        embedded, failed = _embed_and_commit(store, embedder, plan, pool, options, notify)
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
