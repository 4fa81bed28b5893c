"""Perceptual hashes: a 64-bit DCT hash (pHash) of an upright picture, and Hamming distances.

The picture is reduced to 32 x 32 grey pixels; the 8 x 8 lowest frequencies of its 2-D DCT-II
are compared with their median, one bit each. Resizing, recompression and re-encoding move
few of those bits; a different picture moves about half. Hashes are signed 64-bit integers
(as SQLite stores them), so the bit pattern is the hash's two's complement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.errors import ImageError
from lookalike.imaging import DEFAULT_MAX_PIXELS, open_image

#: The side of the grey thumbnail the DCT is taken of, and of the block of frequencies kept.
_SIDE = 32
_KEEP = 8
#: Decode JPEGs at reduced scale no smaller than this (the thumbnail needs far less).
DECODE_SIDE = 128
#: Bits that differ between two unrelated pictures' hashes: about half of 64.
BITS = _KEEP * _KEEP


def _dct_rows() -> npt.NDArray[np.float64]:
    """The first ``_KEEP`` rows of the orthonormal DCT-II matrix of size ``_SIDE``."""
    k = np.arange(_KEEP, dtype=np.float64)[:, None]
    n = np.arange(_SIDE, dtype=np.float64)[None, :]
    rows = np.cos(np.pi * (2 * n + 1) * k / (2 * _SIDE)) * np.sqrt(2.0 / _SIDE)
    rows[0] /= np.sqrt(2.0)
    return np.asarray(rows, dtype=np.float64)


_DCT = _dct_rows()
_WEIGHTS = (1 << np.arange(BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash(image: Image.Image) -> int:
    """The 64-bit perceptual hash of an (upright) image, as a signed integer."""
    grey = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T).ravel()
    bits = (low > np.median(low)).astype(np.uint64)
    value = int((bits * _WEIGHTS).sum(dtype=np.uint64))
    return value - (1 << 64) if value >= 1 << 63 else value


def file_phash(path: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> int | None:
    """The perceptual hash of an image file, upright; None when it cannot be decoded."""
    try:
        return phash(open_image(path, min_side=DECODE_SIDE, max_pixels=max_pixels))
    except ImageError:
        return None


def hamming(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Bits that differ between hashes ``a`` and ``b`` (signed 64-bit, element-wise)."""
    x = np.asarray(a, dtype=np.int64).view(np.uint64) ^ np.asarray(b, dtype=np.int64).view(
        np.uint64
    )
    return np.asarray(np.bitwise_count(x), dtype=np.int64)
