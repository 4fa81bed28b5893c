"""The perceptual hashes an index stores (catalog table ``perceptual_hashes``, keyed by content
hash), filled in lazily from the files where an older index, or vectors added directly,
left them out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.perceptual import file_phash
from lookalike.store import IndexStore


class StoredPerceptualHashes:
    """A :data:`lookalike.duplicates.finder.PerceptualLookup` over an index: stored hashes
    first; a missing one is computed from the image's file when the file is still the one
    indexed (same size and modification time), and kept in the catalog when the index is
    open for writing. ``computed`` counts the hashes computed from files."""

    def __init__(self, store: IndexStore, records: Mapping[int, ImageRecord]) -> None:
        self._store = store
        self._records = records
        self.computed = 0

    def __call__(self, image_ids: Sequence[int]) -> dict[int, int]:
        records = self._records
        digests = {i: records[i].hash for i in image_ids if i in records and records[i].hash}
        known = self._store.catalog.perceptual_hashes(digests.values())
        fresh: dict[str, int] = {}
        for image_id, digest in digests.items():
            if digest in known or digest in fresh:
                continue
            value = _from_file(self._records[image_id])
            if value is not None:
                fresh[digest] = value
        self.computed += len(fresh)
        if fresh and self._store.writable:
            with self._store.catalog.transaction():
                self._store.catalog.set_perceptual_hashes(fresh.items())
        known |= fresh
        return {i: known[d] for i, d in digests.items() if d in known}


def _from_file(record: ImageRecord) -> int | None:
    """The perceptual hash of the record's file, or None when it is gone or has changed."""
    try:
        stat = Path(record.path).stat()
    except OSError:
        return None
    if stat.st_size != record.size or stat.st_mtime_ns != record.mtime_ns:
        return None
    return file_phash(record.path)
