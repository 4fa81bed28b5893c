"""How an index stores its vectors: float32 as embedded, float16, or int8 (scalar quantisation
with per-dimension ranges learned from the collection). The one place vectors are encoded for
a segment file and decoded (or scored) back in float32.

int8 maps each dimension's range [offset - 127 * scale, offset + 127 * scale] onto the codes
-127..127. The ranges are learned once, from the first vectors an index commits (the 0.1 and
99.9 percentiles of each dimension, widened to twice that spread), and kept in
``quantiser.npy`` beside the manifest; a later value outside its dimension's range is clipped
to it (benchmarks/vector_dtypes.py measures how often, and what it costs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.errors import IndexFormatError, InvalidInputError

VectorDtype = Literal["float32", "float16", "int8"]
VECTOR_DTYPES: tuple[VectorDtype, ...] = ("float32", "float16", "int8")
DEFAULT_VECTOR_DTYPE: VectorDtype = "float32"

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

#: Gallery rows converted to float32 at once when scoring compact vectors: small enough that the
#: copy stays in cache while BLAS reads it (measured with NumPy here, one query against 100,000
#: int8 vectors, one BLAS thread: 1,024 rows took about a quarter of the time of 16,384).
SCORE_BLOCK = 1024
_LEVELS = 127
#: Each learned range is widened by this share of its width on both sides (to twice the
#: spread seen), so later vectors rarely fall outside it: on photo embeddings whose first batch
#: was unlike the rest (pixels of colour photos, then of faces) a margin of 0.1 clipped 1.9 %
#: of the later values, 0.5 clipped 0.3 %, while a vector's similarity to its own codes stayed
#: 0.9997 either way.
_MARGIN = 0.5


def check_vector_dtype(name: str) -> VectorDtype:
    """``name`` as a vector dtype, or an error naming the choices."""
    if name not in VECTOR_DTYPES:
        raise InvalidInputError(
            f"vector dtype must be one of {', '.join(VECTOR_DTYPES)}, got {name!r}"
        )
    return name


def check_storage(dtype: str, keep_float32: bool) -> VectorDtype:
    """``dtype`` checked, and refused with ``keep_float32`` when there is nothing to keep."""
    checked = check_vector_dtype(dtype)
    if keep_float32 and checked == "float32":
        raise InvalidInputError(
            "keep_float32 (--keep-float32) keeps float32 beside compact vectors: it needs "
            "vector_dtype float16 or int8 (--vector-dtype)"
        )
    return checked


def check_same_dtype(
    recorded: str, wanted: str | None, directory: Path, *, kept: bool, keep: bool | None = None
) -> None:
    """Refuse a vector dtype (or keep_float32) other than the one an index was created with
    (converting would need the float32 vectors a compact index no longer has)."""
    if wanted is not None:
        check_vector_dtype(wanted)
    if (wanted is not None and wanted != recorded) or (keep is not None and keep != kept):
        had = f"{recorded}{' keeping float32' if kept else ''}"
        asked = f"{wanted or recorded}{' keeping float32' if keep else ''}"
        raise InvalidInputError(
            f"{directory}: index stores its vectors as {had}, not {asked}; the vector "
            "storage is fixed when an index is created: leave --vector-dtype and "
            "--keep-float32 out, or index into a new --index folder"
        )


class VectorCodec:
    """Encodes float32 vectors into a storage dtype and scores or decodes them back.

    ``ranges`` (int8 only) is a (2, dim) float32 array: each dimension's offset and scale.
    """

    def __init__(self, dtype: VectorDtype, ranges: FloatArray | None = None) -> None:
        self.dtype = check_vector_dtype(dtype)
        self.storage: np.dtype[Any] = np.dtype(np.int8 if dtype == "int8" else dtype)
        if dtype == "int8" and ranges is not None:
            ranges = np.asarray(ranges, dtype=np.float32)
            if ranges.ndim != 2 or ranges.shape[0] != 2:
                raise InvalidInputError(f"int8 ranges must have shape (2, dim), got {ranges.shape}")
        self.ranges = ranges if dtype == "int8" else None

    @property
    def needs_ranges(self) -> bool:
        """Whether this codec still has to learn its ranges before it can encode."""
        return self.dtype == "int8" and self.ranges is None

    def learn(self, vectors: FloatArray) -> VectorCodec:
        """A codec with int8 ranges learned from ``vectors`` (other dtypes: this one)."""
        if self.dtype != "int8":
            return self
        return VectorCodec("int8", learn_ranges(vectors))

    def encode(self, vectors: FloatArray) -> npt.NDArray[Any]:
        """Vectors in the storage dtype (int8: clipped to the learned ranges)."""
        if self.dtype == "float32":
            return np.ascontiguousarray(vectors, dtype=np.float32)
        if self.dtype == "float16":
            return np.ascontiguousarray(vectors, dtype=np.float16)
        offset, scale = self._ranges()
        codes = np.rint((np.asarray(vectors, dtype=np.float32) - offset) / scale)
        out: npt.NDArray[np.int8] = np.clip(codes, -_LEVELS, _LEVELS).astype(np.int8)
        return out

    def decode(self, stored: npt.NDArray[Any]) -> FloatArray:
        """Stored vectors back as float32 (a new array, except float32 stored contiguously)."""
        if self.dtype != "int8":
            return np.ascontiguousarray(stored, dtype=np.float32)
        if not stored.size:  # an index with nothing committed has no ranges yet
            return np.zeros(stored.shape, dtype=np.float32)
        offset, scale = self._ranges()
        out: FloatArray = stored.astype(np.float32)
        out *= scale
        out += offset
        return out

    def dots(self, queries: FloatArray) -> Callable[[npt.NDArray[Any]], FloatArray]:
        """A function from a block of stored vectors to its dot products with ``queries``,
        (queries, block), computed in float32 without decoding the block: for int8,
        q . (offset + scale * c) = q . offset + (q * scale) . c, which saves a multiply and an
        add per stored value over decoding (measured: benchmarks/vector_dtypes.py)."""
        if self.dtype == "float32":
            return lambda block: cast(FloatArray, queries @ block.T)
        if self.dtype == "float16":
            return lambda block: cast(FloatArray, queries @ block.astype(np.float32).T)
        offset, scale = self._ranges()
        scaled = np.ascontiguousarray(queries * scale, dtype=np.float32)
        base = (queries @ offset)[:, None]

        def int8_dots(block: npt.NDArray[Any]) -> FloatArray:
            out = cast(FloatArray, scaled @ block.astype(np.float32).T)
            out += base
            return out

        return int8_dots

    def encode_all(self, take: Callable[[IdArray], FloatArray], ids: IdArray) -> npt.NDArray[Any]:
        """The vectors of ``ids`` (read as float32 by ``take``) encoded, a block at a time, so
        the float32 copy never exceeds one block."""
        out = np.empty((len(ids), 0 if not len(ids) else len(take(ids[:1])[0])), self.storage)
        for start in range(0, len(ids), 65_536):
            out[start : start + 65_536] = self.encode(take(ids[start : start + 65_536]))
        return out

    def bytes_per_vector(self, dim: int) -> int:
        return dim * self.storage.itemsize

    def _ranges(self) -> tuple[FloatArray, FloatArray]:
        if self.ranges is None:
            raise InvalidInputError("int8 vectors need learned ranges before they are encoded")
        return self.ranges[0], self.ranges[1]

    # -- the ranges file -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the int8 ranges durably to ``path`` (other dtypes have none)."""
        ranges = self._ranges() if self.dtype == "int8" else None
        if ranges is None:
            return
        block = np.stack(ranges).astype(np.float32)

        def save(fh: IO[bytes]) -> None:
            np.save(fh, block, allow_pickle=False)

        durable.write_with(path, save)

    @classmethod
    def load(cls, dtype: VectorDtype, path: Path, dim: int) -> VectorCodec:
        """The codec of an index storing ``dtype`` (int8: with the ranges in ``path`` if it
        exists; without, until the first vectors are committed)."""
        if dtype != "int8" or not path.exists():
            return cls(dtype)
        try:
            ranges = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexFormatError(f"{path}: unreadable int8 ranges ({exc}); {_HINT}") from exc
        if (
            ranges.shape != (2, dim)
            or ranges.dtype != np.float32
            or not np.isfinite(ranges).all()
            or not (ranges[1] > 0).all()
        ):
            raise IndexFormatError(
                f"{path}: int8 ranges hold {ranges.dtype} {ranges.shape}, expected finite "
                f"float32 (2, {dim}) with positive scales; {_HINT}"
            )
        return cls("int8", ranges)


_HINT = (
    "the index's int8 vectors cannot be decoded without them: rebuild it with `lookalike "
    "index` into a new --index folder"
)


def learn_ranges(vectors: FloatArray) -> FloatArray:
    """Per-dimension (offset, scale) for int8 codes: the 0.1-99.9 percentile range of each
    dimension (min-max under 1,000 vectors), widened by half its width each side. A dimension
    that barely varies in the sample gets a quarter of the widest dimension's range, so a small
    first batch does not make later vectors clip everywhere."""
    data = np.asarray(vectors, dtype=np.float32)
    if data.ndim != 2 or not len(data):
        raise InvalidInputError("int8 ranges are learned from at least one vector")
    if len(data) >= 1000:
        low, high = np.percentile(data, [0.1, 99.9], axis=0).astype(np.float32)
    else:
        low, high = data.min(axis=0), data.max(axis=0)
    centre = (low + high) / 2
    half = (high - low) / 2 * (1 + 2 * _MARGIN)
    floor = max(float(half.max()) * 0.25, float(np.abs(data).max()) * 1e-3, 1e-6)
    half = np.maximum(half, floor)
    return np.stack([centre, half / _LEVELS]).astype(np.float32)


__all__ = [
    "DEFAULT_VECTOR_DTYPE",
    "SCORE_BLOCK",
    "VECTOR_DTYPES",
    "VectorCodec",
    "VectorDtype",
    "check_same_dtype",
    "check_storage",
    "check_vector_dtype",
    "learn_ranges",
]
