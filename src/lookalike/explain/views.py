"""One image made ready to explain: its size as shown, the part the network sees, its
prepared pixels and a preview for overlays. Decoding is kept apart from the network so a
server decodes uploads in its bounded decode slots, outside the lock its searches share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.errors import ImageError
from lookalike.explain.heatmaps import seen_rect
from lookalike.explain.overlays import OVERLAY_SIDE
from lookalike.imaging import DEFAULT_MAX_PIXELS, open_image, prepare, shown_size
from lookalike.input_spec import InputSpec
from lookalike.query.decoding import query_name
from lookalike.region import Box, ImageSource


@dataclass(frozen=True)
class ImageView:
    """An image decoded for an explanation. ``size``: (width, height) as a viewer shows it
    (after EXIF orientation, at full resolution); ``box``: the region asked for, if any;
    ``seen``: the rectangle the network sees (pixels of ``size``); ``pixels``: that part
    prepared for the embedder; ``preview``: the whole image, OVERLAY_SIDE pixels on its long
    side (fewer if the file has fewer), for overlays."""

    size: tuple[int, int]
    box: Box | None
    seen: Box
    pixels: npt.NDArray[np.uint8]
    preview: Image.Image


def view_image(
    source: ImageSource,
    spec: InputSpec,
    *,
    box: Box | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> ImageView:
    """Decode ``source`` (checking ``box`` against it) and prepare what the network sees.
    JPEGs decode at the smallest scale that still gives the network, and the preview, all the
    pixels they use."""
    label = name or query_name(source)
    if isinstance(source, Image.Image):
        image = source.convert("RGB")
        width, height = image.size
        if box is not None:
            box.check(width, height, name=label)
    else:
        data = source if isinstance(source, bytes) else Path(source)
        try:
            width, height = _shown_size(data, max_pixels)
            if box is not None:
                box.check(width, height, name=label)
            region = box.size if box is not None else (width, height)
            short = min(width, height)
            needed = max(
                spec.decode_side * short / max(min(region), 1.0),  # the region, for the network
                OVERLAY_SIDE * short / max(width, height),  # the preview
            )
            image = open_image(data, min_side=math.ceil(needed), max_pixels=max_pixels)
        except ImageError as exc:
            raise ImageError(label, exc.reason) from exc
        if (image.width > image.height) != (width > height) and width != height:
            width, height = height, width  # an orientation the header read did not see
    scale_x, scale_y = image.width / width, image.height / height
    part = image if box is None else image.crop(box.scaled(scale_x, scale_y).pixels())
    pixels = prepare(part, spec)
    # Views are cached: keep a small preview, never the decoded image (a small region of a
    # large photo decodes it at full size).
    image.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.BILINEAR)  # our own copy
    return ImageView(
        size=(width, height),
        box=box,
        seen=seen_rect(width, height, spec, box),
        pixels=pixels,
        preview=image,
    )


def _shown_size(source: Path | bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an image file as shown, from its header (no pixels decoded)."""
    return shown_size(source, max_pixels=max_pixels)


__all__ = ["ImageView", "view_image"]
