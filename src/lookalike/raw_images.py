"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, SRW, ...) read through rawpy
(LibRaw): the embedded JPEG preview when it is big enough for the consumer, else a fast
demosaic (half size, the camera's white balance). Either way the picture comes out upright:
LibRaw turns what it demosaics by the file's orientation; a preview is turned by its own EXIF
orientation when it has one, else by the RAW's.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import ImageError
from lookalike.image_formats import RAW_EXTENSIONS, check_pixels, require_rawpy
from lookalike.orientation import ORIENTATION_TAG, QUARTER_TURNS, TRANSPOSES

#: LibRaw's ``flip`` (dcraw's bits: 1 mirror, 2 upside down, 4 transpose) as an EXIF orientation.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
#: Cameras without a clock write 0 (1970); such a date says nothing.
_NO_DATE_BEFORE = datetime(1971, 1, 1)


@dataclass(frozen=True)
class RawPicture:
    """A decoded RAW: ``image`` upright RGB (a preview or a half-size demosaic), ``full`` the
    upright size of the whole RAW at full scale (what a box's pixels refer to), ``source``
    "preview" or "demosaic"."""

    image: Image.Image
    full: tuple[int, int]
    source: str


@dataclass(frozen=True)
class RawHeader:
    """What a RAW's metadata says, read without decoding pixels."""

    width: int
    height: int
    format: str
    taken: str | None


def raw_format(name: str) -> str:
    """The RAW flavour a file's name says (``dng``, ``cr2``, ...), or ``raw``."""
    suffix = Path(name).suffix.lower()
    return suffix.lstrip(".") if suffix in RAW_EXTENSIONS else "raw"


def open_raw(
    source: Path | bytes,
    *,
    min_side: int | None,
    max_pixels: int,
    name: str,
    region: tuple[float, float] | None = None,
) -> RawPicture:
    """Decode a RAW file upright. ``min_side``: the shorter side the consumer needs (of
    ``region``, a part of the picture at full scale, when given); None: as much detail as a
    half-size demosaic gives. Raises ``ImageError`` naming ``name``."""
    rawpy = require_rawpy(name)
    try:
        with _open(rawpy, source) as raw:
            sizes = raw.sizes
            width, height = int(sizes.width), int(sizes.height)
            check_pixels(width, height, max_pixels, name, kind="camera RAW")
            orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
            full = (height, width) if orientation in QUARTER_TURNS else (width, height)
            half_short = min(width, height) // 2
            needed = half_short
            if min_side is not None:
                part = min(region) if region is not None else min(full)
                needed = min(half_short, math.ceil(min_side * min(full) / max(part, 1.0)))
            preview = _preview(raw, rawpy, orientation, full, needed, max_pixels)
            if preview is not None:
                return RawPicture(preview, full, "preview")
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return RawPicture(Image.fromarray(np.ascontiguousarray(pixels)), full, "demosaic")
    except ImageError:
        raise
    except rawpy.LibRawError as exc:
        raise ImageError(name, _libraw_reason(exc)) from exc


def read_raw_header(source: Path | bytes, *, name: str) -> RawHeader:
    """The upright size, flavour and date of a RAW, from its metadata (no pixels decoded)."""
    rawpy = require_rawpy(name)
    try:
        with _open(rawpy, source) as raw:
            sizes = raw.sizes
            width, height = int(sizes.width), int(sizes.height)
            if _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1) in QUARTER_TURNS:
                width, height = height, width
            return RawHeader(width, height, raw_format(name), _taken(raw))
    except rawpy.LibRawError as exc:
        raise ImageError(name, _libraw_reason(exc)) from exc


def _open(rawpy: Any, source: Path | bytes) -> Any:
    # rawpy warns in every forked process (decode workers are forked) that LibRaw's OpenMP
    # may deadlock there. That needs OpenMP threads started in the parent before the fork;
    # the parents that fork workers (indexing) decode no RAW themselves.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "rawpy is being used in a process", RuntimeWarning)
        if isinstance(source, bytes):
            return rawpy.imread(io.BytesIO(source))
        return rawpy.imread(str(source))


def _libraw_reason(exc: Exception) -> str:
    detail = str(exc).strip("b'\"") or type(exc).__name__
    return (
        f"cannot read this camera RAW file ({detail}): it is damaged or truncated, or LibRaw "
        "does not know the camera; convert it to DNG or JPEG"
    )


def _preview(
    raw: Any,
    rawpy: Any,
    orientation: int,
    full: tuple[int, int],
    needed: int,
    max_pixels: int,
) -> Image.Image | None:
    """The embedded preview, upright, when there is one whose shorter side is at least
    ``needed``; None otherwise (no preview, too small, or one that does not decode)."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.BITMAP:
            image = Image.fromarray(np.ascontiguousarray(thumb.data)).convert("RGB")
            own = 1
        else:
            image = Image.open(io.BytesIO(thumb.data))
            if min(image.size) < needed or image.width * image.height > max_pixels:
                return None
            if image.format == "JPEG":
                scale = needed / min(image.size)
                wanted = (math.ceil(image.width * scale), math.ceil(image.height * scale))
                image.draft("RGB", wanted)
            own = int(image.getexif().get(ORIENTATION_TAG, 1))
            image = image.convert("RGB")
    except Exception:  # a damaged preview: the RAW data itself may still be fine
        return None
    if min(image.size) < needed:
        return None
    # LibRaw hands out a JPEG preview that lacks EXIF with its own EXIF block saying the RAW's
    # orientation; a camera's own EXIF block (first in the JPEG) is kept.
    turn = own if own != 1 else orientation
    method = TRANSPOSES.get(turn)
    if method is None:
        return image
    if (
        turn in QUARTER_TURNS
        and image.width != image.height
        and full[0] != full[1]
        and (image.width > image.height) == (full[0] > full[1])
    ):
        return image  # the camera stored its preview upright already
    return image.transpose(method)


def _taken(raw: Any) -> str | None:
    other = getattr(raw, "other", None)
    moment = getattr(other, "timestamp", None)
    if not isinstance(moment, datetime) or moment.replace(tzinfo=None) < _NO_DATE_BEFORE:
        return None
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


__all__ = ["RawHeader", "RawPicture", "open_raw", "raw_format", "read_raw_header"]
