"""Random access to stored vectors by image id, without loading the whole collection.

An approximate index re-scores its candidates with the vectors it was not built on (the full
vectors behind a PCA graph); a million 1280-d vectors are 5 GB, so they are read from the
memory-mapped segments, where the operating system keeps the pages that are used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.errors import InvalidInputError
from lookalike.indexes.base import check_rows

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]
Decode = Callable[[npt.NDArray[Any]], FloatArray]


def _as_float32(stored: npt.NDArray[Any]) -> FloatArray:
    return np.ascontiguousarray(stored, dtype=np.float32)


class VectorTable:
    """Image id -> vector, over one or more (rows, dim) arrays (segments or memory).

    ``ids`` must be sorted; ``parts[i]`` holds the vectors of the ids whose ``part`` is ``i``,
    at row ``row``, as stored (float32, float16 or int8); ``decode`` turns stored rows into
    float32 (an index's :class:`lookalike.vector_codec.VectorCodec`), so ``take`` always gives
    float32.
    """

    def __init__(
        self,
        ids: IdArray,
        part: IdArray,
        row: IdArray,
        parts: Sequence[npt.NDArray[Any]],
        decode: Decode = _as_float32,
    ) -> None:
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise InvalidInputError("vector table ids must be unique and sorted")
        self.ids = ids
        # Plain ndarray views: indexing an np.memmap costs several times more per call.
        self._parts = [np.asarray(p) for p in parts]
        self.dim = int(parts[0].shape[1]) if parts else 0
        # Catalog ids are dense, so a direct id -> (part, row) map is small and O(1) per id
        # (a binary search of a million ids misses the cache about twenty times per id).
        size = int(ids[-1]) + 1 if len(ids) else 0
        if len(ids) and ids[0] >= 0 and size <= 4 * len(ids) + 1024:
            self._slot: IdArray | None = np.full(size, -1, dtype=np.int64)
            self._slot[ids] = np.arange(len(ids), dtype=np.int64)
        else:
            self._slot = None
        self._part = part
        self._row = row
        self._decode = decode

    @classmethod
    def of(cls, ids: IdArray, vectors: FloatArray) -> VectorTable:
        """A table over vectors already in memory (in any id order)."""
        check_rows(ids, vectors)
        order = np.argsort(ids, kind="stable")
        return cls(
            np.ascontiguousarray(ids[order], dtype=np.int64),
            np.zeros(len(ids), dtype=np.int64),
            order.astype(np.int64),
            [vectors],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, ids: IdArray | Sequence[int]) -> FloatArray:
        """The vectors of ``ids`` as float32, in that order; an id not in the table is an
        error."""
        return self._decode(self.take_stored(ids))

    def rows(self, positions: npt.NDArray[np.intp] | slice) -> FloatArray:
        """The float32 vectors of the ids at these positions of ``ids`` (blocks and samples
        of the whole table, in id order)."""
        return self.take(self.ids[positions])

    @property
    def storage(self) -> np.dtype[Any]:
        """The dtype the vectors are stored in."""
        return self._parts[0].dtype if self._parts else np.dtype(np.float32)

    def take_stored(self, ids: IdArray | Sequence[int]) -> npt.NDArray[Any]:
        """The vectors of ``ids`` as stored (no decoding), in that order."""
        wanted = np.asarray(ids, dtype=np.int64)
        if self._slot is not None:
            inside = (wanted >= 0) & (wanted < len(self._slot))
            at = np.where(inside, self._slot[np.where(inside, wanted, 0)], -1)
            found = at >= 0
        else:
            at = np.searchsorted(self.ids, wanted)
            found = at < len(self.ids)
            found[found] = self.ids[at[found]] == wanted[found]
        if not bool(found.all()):
            missing = wanted[~found][:5].tolist()
            raise InvalidInputError(f"image ids not in the index: {missing}")
        rows = self._row[at]
        if len(self._parts) == 1:
            return np.ascontiguousarray(self._parts[0][rows])
        out = np.empty((len(wanted), self.dim), dtype=self.storage)
        parts = self._part[at]
        for part in np.unique(parts).tolist():
            mask = parts == part
            out[mask] = self._parts[part][rows[mask]]
        return out
