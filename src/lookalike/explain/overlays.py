"""Overlays: an image with its heatmap blended on top, as a PNG (and as a data URL)."""

from __future__ import annotations

import base64
import io

import numpy as np
import numpy.typing as npt
from PIL import Image

#: The long side of an overlay, in pixels, at most.
OVERLAY_SIDE = 512
#: The colour map, cold to hot (dark blue, blue, cyan, yellow, red), at evenly spaced heats.
_COLOURS = np.array(
    [[20, 20, 120], [30, 90, 230], [40, 210, 220], [250, 220, 40], [230, 30, 30]],
    dtype=np.float32,
)
#: How much of the colour covers the image: a little where nothing agrees (the image stays
#: readable), most where the heat is highest.
_ALPHA_COLD, _ALPHA_HOT = 0.15, 0.6


def colourise(heat: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Heat in 0..1 (any shape) -> RGB colours (..., 3) in 0..255 along the colour map."""
    position = np.clip(heat, 0.0, 1.0) * (len(_COLOURS) - 1)
    low = np.minimum(np.floor(position).astype(np.int64), len(_COLOURS) - 2)
    fraction = (position - low)[..., None]
    colours: npt.NDArray[np.float32] = _COLOURS[low] * (1 - fraction) + _COLOURS[low + 1] * fraction
    return colours


#: The colour map and the blend's opacity at 256 heat levels (an overlay looks them up).
_LEVELS = np.linspace(0.0, 1.0, 256, dtype=np.float32)
_LUT_COLOUR = colourise(_LEVELS)
_LUT_ALPHA = _ALPHA_COLD + (_ALPHA_HOT - _ALPHA_COLD) * _LEVELS


def overlay_png(image: Image.Image, heat: npt.NDArray[np.float32]) -> bytes:
    """``image`` (upright, any size) at most OVERLAY_SIDE pixels on its long side, with
    ``heat`` (covering the whole image, 0..1) stretched over it and blended in colour."""
    shown = image.convert("RGB")
    shown.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.BILINEAR)
    levels = Image.fromarray(
        np.round(np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    ).resize(shown.size, Image.Resampling.BILINEAR)
    level = np.asarray(levels)
    alpha = _LUT_ALPHA[level][..., None]
    pixels = np.asarray(shown, dtype=np.float32) * (1 - alpha) + _LUT_COLOUR[level] * alpha
    buffer = io.BytesIO()
    # Fast compression: a photo barely compresses as PNG, and level 6 took ~180 ms here.
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """A PNG as a ``data:image/png;base64,...`` URL, as the REST answer carries it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


__all__ = ["OVERLAY_SIDE", "colourise", "data_url", "overlay_png"]
