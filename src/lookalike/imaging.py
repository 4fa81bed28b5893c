"""Decoding untrusted image files into RGB pixels, and cutting them to a network's input.

Every way an image file can go wrong ends in an ``ImageError`` naming the file and the reason:
truncated or zero-byte files, files that are not images, decompression bombs. Large JPEGs are
decoded at reduced scale (``Image.draft``), which costs nothing in quality for a 224-pixel input
and saves most of the decoding time. Pipelines that must not stop at one bad file (worker
processes, Ray tasks, training sets) use :func:`decode_for_model`, which returns the reason.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from lookalike.errors import ImageError, InvalidInputError
from lookalike.image_formats import (
    Container,
    check_pixels,
    container_of,
    prepare_container,
    read_head,
)
from lookalike.input_spec import InputSpec
from lookalike.orientation import ORIENTATION_TAG, QUARTER_TURNS, TRANSPOSES
from lookalike.raw_images import open_raw, read_raw_header
from lookalike.region import Box

#: Refuse images with more pixels than this (a 150-megapixel photo is ~450 MB of RGB).
DEFAULT_MAX_PIXELS = 150_000_000

_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def open_image(
    source: Path | str | bytes,
    *,
    min_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    box: Box | None = None,
    name: str | None = None,
) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) into an upright RGB image. Every format
    PIL reads, and HEIC/HEIF, AVIF and camera RAW (image_formats.py, raw_images.py).

    ``min_side`` lets JPEG decoding skip detail a consumer will not use: the image is decoded at
    the smallest power-of-two reduction whose shorter side is still at least ``min_side`` (a
    HEIC's embedded thumbnail and a RAW's preview are used when they are that large).
    ``box``: only that region (pixels of the upright image at full scale), checked against the
    image's full size; ``min_side`` then bounds the region's shorter side, so a region keeps
    the detail a whole image would. ``name``: how errors call the source (default: its path).
    """
    if name is None:
        name = "<uploaded image>" if isinstance(source, bytes) else str(source)
    container = Container.PIL
    try:
        data = source if isinstance(source, bytes) else Path(source)
        container = container_of(read_head(data), _suffix(source, name))
        if container is Container.RAW:
            return _open_raw(data, min_side, max_pixels, box, name)
        prepare_container(container, name)
        fp = io.BytesIO(data) if isinstance(data, bytes) else data
        with _pil_limit(max_pixels), Image.open(fp) as image:
            width, height = image.size
            check_pixels(width, height, max_pixels, name, kind="image")
            # JPEG: decoded at a reduced scale; HEIF (pillow-heif): its embedded thumbnail,
            # when one is large enough.
            if min_side is not None and image.format in ("JPEG", "HEIF"):
                scale = min_side / min(box.size if box is not None else (width, height))
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            image.seek(0)  # first frame of animations
            image.load()
            if box is None:
                result = _to_rgb(_upright(image))
            else:
                result = _to_rgb(_upright_region(image, box, (width, height), name))
            # The result must outlive the file, which the with-block closes.
            return result.copy() if result is image else result
    except (ImageError, InvalidInputError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(
            name, f"declared size is over the limit, refused as a decompression bomb ({exc})"
        ) from exc
    except FileNotFoundError as exc:
        raise ImageError(name, "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageError(name, "is a directory, not an image file") from exc
    except UnidentifiedImageError as exc:
        size = len(source) if isinstance(source, bytes) else _file_size(name)
        what = "empty file (0 bytes)" if size == 0 else "not an image file PIL can read"
        if size != 0 and container in _ARCHIVE_NAMES:
            what = f"damaged or truncated {_ARCHIVE_NAMES[container]} file (cannot be parsed)"
        raise ImageError(name, what) from exc
    except Exception as exc:  # decoders of untrusted bytes raise many exception types
        raise ImageError(name, f"cannot decode: {type(exc).__name__}: {exc}") from exc


def shown_size(
    source: Path | str | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> tuple[int, int]:
    """(width, height) of an image as shown upright, from its header where the format allows
    (the full-scale size a :class:`Box` refers to). Raises ``ImageError`` like
    :func:`open_image` for files it cannot read."""
    if name is None:
        name = "<uploaded image>" if isinstance(source, bytes) else str(source)
    try:
        data = source if isinstance(source, bytes) else Path(source)
        container = container_of(read_head(data), _suffix(source, name))
        if container is Container.RAW:
            header = read_raw_header(data, name=name)
            return header.width, header.height
        prepare_container(container, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked on decode
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
                width, height = image.size
                quarter = _orientation(image) in QUARTER_TURNS
        return (height, width) if quarter else (width, height)
    except ImageError:
        raise
    except Exception:  # open_image says why the file cannot be read
        return open_image(source, max_pixels=max_pixels, name=name).size


def _suffix(source: Path | str | bytes, name: str) -> str:
    """The extension that hints a file's format (an upload's: its name's, if any)."""
    return Path(name if isinstance(source, bytes) else source).suffix


def _open_raw(
    data: Path | bytes, min_side: int | None, max_pixels: int, box: Box | None, name: str
) -> Image.Image:
    region = box.size if box is not None else None
    picture = open_raw(data, min_side=min_side, max_pixels=max_pixels, name=name, region=region)
    image = picture.image
    if box is None:
        return image
    box.check(*picture.full, name=name)
    scale_x, scale_y = image.width / picture.full[0], image.height / picture.full[1]
    return image.crop(box.scaled(scale_x, scale_y).pixels())


_ARCHIVE_NAMES = {Container.HEIF: "HEIC/HEIF", Container.AVIF: "AVIF"}
_PIL_LIMIT_LOCK = threading.Lock()


@contextmanager
def _pil_limit(max_pixels: int) -> Iterator[None]:
    """PIL refuses images over 2 * MAX_IMAGE_PIXELS at open and warns above it; our own
    ``max_pixels`` check replaces both, so PIL's limit is lifted to ours for the open call.
    Safe across threads: every caller applies its own pixel check right after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        pil_limit = Image.MAX_IMAGE_PIXELS
        if pil_limit is None or 2 * pil_limit >= max_pixels:
            yield
            return
        with _PIL_LIMIT_LOCK:
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = pil_limit


def _file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return -1


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block must not cost the picture
        return image


def _orientation(image: Image.Image) -> int:
    """The image's EXIF orientation (1, as stored, when it has none or a damaged one)."""
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:
        return 1


def _upright_region(
    image: Image.Image, box: Box, stored: tuple[int, int], name: str
) -> Image.Image:
    """The region ``box`` of ``image`` as shown upright. The box is in full-scale pixels of
    the upright picture and is checked against its size (``stored``, the file's width and
    height, turned by the EXIF orientation); ``image`` may be decoded at reduced scale.
    The region is cut from the stored pixels first and only it is turned upright, so a
    small region of a large photo costs no copy of the whole decoded image."""
    orientation = _orientation(image)
    quarter = orientation in QUARTER_TURNS
    full = (stored[1], stored[0]) if quarter else stored
    box.check(*full, name=name)
    w, h = image.size
    shown = (h, w) if quarter else (w, h)
    x0, y0, x1, y1 = box.scaled(shown[0] / full[0], shown[1] / full[1]).pixels()
    # The same rectangle in the stored pixels, for each way the picture may be stored.
    rect = {
        2: (w - x1, y0, w - x0, y1),
        3: (w - x1, h - y1, w - x0, h - y0),
        4: (x0, h - y1, x1, h - y0),
        5: (y0, x0, y1, x1),
        6: (y0, h - x1, y1, h - x0),
        7: (w - y1, h - x1, w - y0, h - x0),
        8: (w - y1, x0, w - y0, x1),
    }.get(orientation, (x0, y0, x1, y1))
    region = image.crop(rect)
    method = TRANSPOSES.get(orientation)
    return region.transpose(method) if method is not None else region


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in _TRANSPARENT_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
    else:
        # 16-bit greyscale (stored by PIL as I;16 or I): map 0..65535 to 0..255.
        top = 65535.0 if pixels.max() > 255 or image.mode.startswith("I;16") else 255.0
        scaled = np.clip(pixels, 0, top) * (255.0 / top)
    grey = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    return grey.convert("RGB")


def prepare(image: Image.Image, spec: InputSpec) -> npt.NDArray[np.uint8]:
    """Cut and resize an RGB image to the network input the spec asks for, uint8 (h, w, 3):
    the centre square (``crop``) or the whole image, aspect kept (``whole``).

    Cropping happens in source coordinates before resampling, so a very wide or very tall image
    costs no more memory than its crop.
    """
    width, height = image.size
    if spec.whole:
        rows, cols = spec.shape_for(width, height)
        return np.asarray(image.resize((cols, rows), Image.Resampling.BILINEAR), dtype=np.uint8)
    side = min(width, height) * spec.crop_fraction
    left, top = (width - side) / 2, (height - side) / 2
    resized = image.resize(
        (spec.size, spec.size),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
    )
    return np.asarray(resized, dtype=np.uint8)


def load_prepared(
    source: Path | str | bytes, spec: InputSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> npt.NDArray[np.uint8]:
    """Decode and prepare in one step, decoding JPEGs no larger than the input needs."""
    image = open_image(source, min_side=spec.decode_side, max_pixels=max_pixels)
    return prepare(image, spec)


@dataclass(frozen=True)
class Decoded:
    """The outcome for one file: pixels, or the reason it was skipped; ``phash``: the upright
    picture's perceptual hash, when asked for (duplicates/perceptual.py)."""

    pixels: npt.NDArray[np.uint8] | None
    error: str | None
    phash: int | None = None


def decode_for_model(
    source: Path | str | bytes,
    spec: InputSpec,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    perceptual: bool = False,
) -> Decoded:
    """:func:`load_prepared` for batch pipelines: a file that cannot be used becomes a reason
    (never empty) instead of an exception, so one bad file never stops a batch.
    ``perceptual``: also hash the decoded picture (no second decode)."""
    try:
        image = open_image(source, min_side=spec.decode_side, max_pixels=max_pixels)
        if not perceptual:
            return Decoded(prepare(image, spec), None)
        from lookalike.duplicates.perceptual import phash

        return Decoded(prepare(image, spec), None, phash(image))
    except ImageError as exc:
        return Decoded(None, exc.reason or "cannot decode")
