"""EXIF orientation: the tag, the values that turn a picture a quarter (width <-> height), and
the transposition that shows each value upright (as ``ImageOps.exif_transpose`` does). One
table for every reader of pixels or sizes (imaging, RAW previews, header facts)."""

from __future__ import annotations

from PIL import Image

ORIENTATION_TAG = 0x0112
QUARTER_TURNS = frozenset({5, 6, 7, 8})
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
