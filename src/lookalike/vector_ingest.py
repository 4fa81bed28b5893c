"""Vector ingest: embedding queued image files, locally (decoding in worker processes, the
network in batches) or on a Ray cluster, and committing their vectors with their catalog rows in
atomic steps, so that a killed run loses at most the step in flight."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageEntry, ImageRecord
from lookalike.decoding import WorkerPool
from lookalike.embedders.base import Embedder
from lookalike.embedders.batching import embed_images
from lookalike.index_options import IndexOptions, IndexProgress, ProgressCallback, SkippedFile
from lookalike.sources import ImageFile
from lookalike.store import IndexStore

#: A file queued for embedding: the file, the record it replaces (None: new), its content hash.
Queued = tuple[ImageFile, ImageRecord | None, str]

Outcome = tuple[int, "npt.NDArray[np.float32] | None", "str | None"]


def local_vectors(
    paths: list[str],
    embedder: Embedder,
    pool: WorkerPool,
    options: IndexOptions,
    phashes: dict[int, int] | None = None,
) -> Iterator[Outcome]:
    """(position, vector, None) or (position, None, reason) for every path, in order: decoding
    in the worker processes, the network in large batches here. ``phashes``: filled with each
    decoded picture's perceptual hash by position, before its outcome is yielded."""
    pixels: list[npt.NDArray[np.uint8]] = []
    positions: list[int] = []
    decoded = pool.decode(
        paths, embedder.input_spec, max_pixels=options.max_pixels, perceptual=phashes is not None
    )
    for position, outcome in enumerate(decoded):
        if outcome.pixels is None:
            yield position, None, outcome.error or "cannot decode"
            continue
        if phashes is not None and outcome.phash is not None:
            phashes[position] = outcome.phash
        pixels.append(outcome.pixels)
        positions.append(position)
        if len(pixels) >= options.batch_size:
            yield from zip(
                positions, embed_images(embedder, pixels), [None] * len(pixels), strict=True
            )
            pixels.clear()
            positions.clear()
    if pixels:
        yield from zip(positions, embed_images(embedder, pixels), [None] * len(pixels), strict=True)


def ray_vectors(
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


def embed_and_commit(
    store: IndexStore,
    make_embedder: Callable[[], Embedder],
    queued: list[Queued],
    skipped: list[SkippedFile],
    pool: WorkerPool,
    options: IndexOptions,
    notify: ProgressCallback,
) -> tuple[int, int]:
    """Embed the queued files; returns (embedded, old records dropped because the file broke).
    Files that cannot be decoded are added to ``skipped``.

    Vectors come from the local pipeline or from a Ray cluster (in any order); either way they
    are committed in atomic steps of ``commit_every`` images."""
    total = len(queued)
    if total == 0:
        return 0, 0
    embedder = make_embedder()
    vectors: list[npt.NDArray[np.float32]] = []
    ready: list[Queued] = []
    #: Perceptual hashes by queue position (the local pipeline computes them while decoding).
    phashes: dict[int, int] = {}
    ready_phashes: list[int | None] = []
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
                        ImageEntry(f.path, f.size, f.mtime_ns, digest, f.label, phash)
                        for (f, _, digest), phash in zip(ready, ready_phashes, strict=True)
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
        ready_phashes.clear()

    dropped_total = 0
    paths = [f.path for f, _, _ in queued]
    if options.ray_address is not None:
        shards = store.layout.shard_run(uuid.uuid4().hex)
        outcomes = ray_vectors(paths, embedder, options, shards)
    else:
        outcomes = local_vectors(paths, embedder, pool, options, phashes)
    for done, (position, vector, error) in enumerate(outcomes, start=1):
        item = queued[position]
        if vector is None:
            skipped.append(SkippedFile(item[0].path, error or "cannot decode"))
            if item[1] is not None:
                dropped.append(item[1].id)
                dropped_total += 1
        else:
            vectors.append(vector)
            ready.append(item)
            ready_phashes.append(phashes.pop(position, None))
        if done % options.batch_size == 0:
            notify(IndexProgress("embed", done, total))
        if len(ready) >= options.commit_every:
            commit()
    commit()
    notify(IndexProgress("embed", total, total))
    return embedded, dropped_total
