"""Segment files: the immutable ``.npy`` files of vectors under ``segments/`` (float32, or the
compact dtype the manifest names: see vector_codec.py). Writing
one (durably, with its checksum), mapping one into memory, and checking one against what the
catalog recorded at commit. Which segments are committed is the catalog's business."""

from __future__ import annotations

import mmap
import uuid
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.catalog_records import SegmentRecord
from lookalike.checksums import ChecksumWriter, file_checksum, is_known
from lookalike.disk_errors import writing
from lookalike.errors import DamagedSegmentError, InvalidInputError
from lookalike.layout import IndexLayout
from lookalike.vector_codec import VectorCodec


class SegmentFiles:
    """The segment files of one index directory, holding vectors of ``dim`` dimensions stored
    by ``codec`` (its storage dtype is fixed for the index; int8 ranges are learned once)."""

    def __init__(self, layout: IndexLayout, dim: int, codec: VectorCodec | None = None) -> None:
        self.layout = layout
        self.dim = dim
        self.codec = codec or VectorCodec("float32")
        #: Segment files whose checksum this process has checked (segments never change).
        self._checked: set[str] = set()

    def write(self, vectors: npt.NDArray[np.float32]) -> tuple[str, str]:
        """Write vectors to a new segment file; returns (its name, its checksum). Vectors that
        are not all finite (NaN, infinity) are refused: they would score nonsense against
        every query. They are stored encoded by the codec (float16 or int8 if the index says).
        """
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidInputError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        block = np.ascontiguousarray(vectors, dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(bad):
            raise InvalidInputError(
                f"{len(bad)} of {len(block)} vectors hold NaN or infinite values (first at row "
                f"{int(bad[0])}); nothing was committed: fix the embedder or the vectors passed"
            )
        return self.write_stored(self.codec.encode(block))

    def write_stored(self, block: npt.NDArray[Any]) -> tuple[str, str]:
        """Write vectors already in the storage dtype (compaction's copy) to a new segment
        file; returns (its name, its checksum)."""
        if block.ndim != 2 or block.shape[1] != self.dim or block.dtype != self.codec.storage:
            raise InvalidInputError(
                f"stored vectors must be {self.codec.storage} (n, {self.dim}), got "
                f"{block.dtype} {block.shape}"
            )
        block = np.ascontiguousarray(block)
        name = f"seg-{uuid.uuid4().hex}.npy"
        writer: list[ChecksumWriter] = []

        def save(fh: IO[bytes]) -> None:
            writer.append(ChecksumWriter(fh))
            np.save(writer[0], block, allow_pickle=False)

        with writing(self.layout.directory):
            durable.write_with(self.layout.segment(name), save)
        return name, writer[0].checksum

    def open(self, segment: SegmentRecord, *, populate: bool = False) -> npt.NDArray[Any]:
        """A segment's vectors as stored (the codec's dtype), memory-mapped read-only.
        ``populate`` maps every page up front (Linux MAP_POPULATE): one bulk step instead of a
        page fault on each first touch, which is what random reads by id (re-scoring ANN
        candidates) would otherwise pay.

        The first time this process maps a segment, its checksum is checked (0.22 s for
        100,000 x 1280 vectors, about what reading them costs), so flipped bits never reach a
        score; segments written before checksums existed are checked for finite values."""
        path = self.layout.segment(segment.file)
        if self.codec.needs_ranges:
            raise DamagedSegmentError(
                f"{path}: int8 codes whose ranges ({self.layout.quantiser.name}) are missing; "
                f"{self._repair_hint}"
            )
        try:
            if populate and hasattr(mmap, "MAP_POPULATE"):
                data = _map_npy(path)
            else:
                data = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise DamagedSegmentError(
                f"{path}: vector segment missing; {self._repair_hint}", missing=True
            ) from exc
        except (ValueError, OSError, EOFError) as exc:
            raise DamagedSegmentError(
                f"{path}: damaged vector segment ({exc}); {self._repair_hint}"
            ) from exc
        if data.ndim != 2 or data.shape[1] != self.dim or data.dtype != self.codec.storage:
            raise DamagedSegmentError(
                f"{path}: segment holds {data.dtype} {data.shape}, expected "
                f"{self.codec.storage} (n, {self.dim}); {self._repair_hint}"
            )
        if segment.file not in self._checked:
            try:
                problem = contents_problem(path, segment, data)
            except FileNotFoundError as exc:  # compacted away since it was mapped
                raise DamagedSegmentError(
                    f"{path}: vector segment missing; {self._repair_hint}", missing=True
                ) from exc
            if problem:
                raise DamagedSegmentError(f"{path}: {problem}; {self._repair_hint}")
            self._checked.add(segment.file)
        return data

    def problem(self, segment: SegmentRecord, *, contents: bool = True) -> str | None:
        """What is wrong with a committed segment's file, or None when it is sound.
        ``contents=False`` checks only what its header says (cheap: no data is read)."""
        path = self.layout.segment(segment.file)
        if self.codec.needs_ranges:  # int8 codes without their ranges cannot be decoded
            return f"int8 codes whose ranges ({self.layout.quantiser.name}) are missing"
        try:
            data = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return "file missing"
        except (ValueError, OSError, EOFError) as exc:
            return f"unreadable ({exc})"
        if data.ndim != 2 or data.shape[1] != self.dim or data.dtype != self.codec.storage:
            return f"holds {data.dtype} {data.shape}, expected {self.codec.storage} (n, {self.dim})"
        if len(data) != segment.rows:
            return f"holds {len(data)} rows, the catalog says {segment.rows}"
        return contents_problem(path, segment, data) if contents else None

    @property
    def _repair_hint(self) -> str:
        return (
            f"the index is damaged: run `lookalike verify --index {self.layout.directory} "
            "--repair` (re-embeds what it can), or `lookalike index` on the photo folder"
        )


def contents_problem(path: Path, segment: SegmentRecord, data: npt.NDArray[Any]) -> str | None:
    """What the checksum (or, for a segment without one, a finiteness check) finds wrong with
    a segment's contents, or None."""
    if segment.checksum is not None and is_known(segment.checksum):
        found = file_checksum(path)
        if found != segment.checksum:
            return f"checksum {found} differs from the {segment.checksum} recorded at commit"
        return None
    for start in range(0, len(data), 65_536):
        if not np.isfinite(data[start : start + 65_536]).all():
            return "holds NaN or infinite values"
    return None


def _map_npy(path: Path) -> npt.NDArray[Any]:
    """A C-order .npy file mapped read-only with every page populated (Linux)."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if fortran or dtype.hasobject:
            raise ValueError("not a C-order numeric array")
        offset = fh.tell()
        count = int(np.prod(shape))
        if count == 0:
            return np.empty(shape, dtype=dtype)
        mapped = mmap.mmap(
            fh.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ
        )
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
