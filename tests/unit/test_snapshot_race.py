"""Readers load vectors while a writer appends and compacts: every load sees one committed
state (locations and segment list from one snapshot), never a KeyError or a missing file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from lookalike.catalog_records import ImageEntry
from lookalike.embedders.base import EmbedderSpec
from lookalike.manifest import Manifest
from lookalike.store import IndexStore

DIM = 16
MANIFEST = Manifest(
    embedder=EmbedderSpec("test"), weights_digest="0" * 64, dim=DIM, metric="euclidean"
)


def test_readers_racing_a_compacting_writer_always_see_a_consistent_table(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "race.idx"
    writer = IndexStore.create(directory, MANIFEST)
    rng = np.random.default_rng(2024)
    written = 0

    def append(n: int) -> None:
        nonlocal written
        # Each vector holds its image's number everywhere: a reader can check it.
        numbers = np.arange(written, written + n, dtype=np.float32)
        vectors = np.repeat(numbers[:, None], DIM, axis=1)
        entries = [ImageEntry(f"img{k}", 1, 1, f"h{k}", None) for k in range(written, written + n)]
        writer.append(vectors, entries)
        written += n

    append(5)
    errors: list[BaseException] = []
    loads = [0, 0]
    stop = threading.Event()

    def read(slot: int) -> None:
        store = IndexStore.open(directory)
        try:
            while not stop.is_set():
                ids, vectors = store.load_vectors()
                # Ids are handed out in order (img0 is id 1), and nothing is ever deleted here.
                assert np.array_equal(ids, np.arange(1, len(ids) + 1))
                assert np.array_equal(vectors[:, 0], ids - 1)
                assert np.array_equal(vectors[:, -1], ids - 1)
                loads[slot] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for thread in readers:
        thread.start()
    compactions = 0
    deadline = time.monotonic() + 4.0
    try:
        while time.monotonic() < deadline and not errors:
            append(int(rng.integers(1, 20)))
            if rng.random() < 0.4:
                writer.compact()
                compactions += 1
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
        writer.close()
    assert not errors, repr(errors[0])
    assert compactions > 5 and min(loads) > 5, (compactions, loads)
