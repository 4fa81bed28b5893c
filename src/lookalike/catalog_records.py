"""Catalog records: the rows the catalog reads and writes, as frozen values (an indexed image,
an image about to be added, a committed segment, where every vector lives)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ImageRecord:
    """One indexed image as the catalog knows it."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    segment: int
    row: int


@dataclass(frozen=True)
class ImageEntry:
    """An image about to be added, before its vector has a place: the file facts of its row."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    #: The picture's perceptual hash (duplicates/perceptual.py), when decoding computed it.
    phash: int | None = None

    def at(self, segment: int, row: int) -> NewImage:
        """The catalog row of this image once its vector is at ``row`` of ``segment``."""
        return NewImage(self.path, self.size, self.mtime_ns, self.hash, self.label, segment, row)


@dataclass(frozen=True)
class NewImage:
    """An image about to be added: its file facts and where its vector was written."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    label: str | None
    segment: int
    row: int


@dataclass(frozen=True)
class SegmentRecord:
    """A committed segment file: its name, the rows written to it, and its checksum (None:
    written before checksums were recorded)."""

    id: int
    file: str
    rows: int
    checksum: str | None


@dataclass(frozen=True)
class Locations:
    """Where every indexed image's vector lives, read in one snapshot of the catalog: (ids,
    segments, rows) ordered by id, the segments they name, and the generation read."""

    ids: npt.NDArray[np.int64]
    segments: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    files: dict[int, SegmentRecord]
    generation: int
