"""Copy-detection benchmark: make edited copies of photos and remember which original each is.

A reverse image search engine should find the original when it is queried with an edited copy.
:func:`make_copy_set` writes every original and one copy per edit; each edit is a small pure
function of an RGB image and a seeded ``numpy.random.Generator``, so a benchmark is reproducible:

- ``crop60``: a crop keeping 60 % of the area, at a random offset;
- ``hflip``: a horizontal mirror;
- ``jpeg15``: re-encoded as a JPEG of quality 15 (heavy blocking);
- ``rotate15``: rotated by 15 degrees, same canvas, white corners;
- ``colour``: brightness, contrast and saturation each scaled by a factor in [0.6, 1.4], plus a
  small hue shift;
- ``downscale4``: each side shrunk four times;
- ``border_text``: a solid border of 8 % of each side, and a line of text over the photo;
- ``grey``: greyscale (still stored as RGB);
- ``combo``: ``crop60``, then ``jpeg15``, then ``colour``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

EditFn = Callable[[Image.Image, np.random.Generator], Image.Image]

_WHITE = (255, 255, 255)
_SAVE_QUALITY = 95
_TEXT = "© lookalike 2026"


def crop60(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Crop a window of 60 % of the area (same aspect ratio) at a random offset."""
    width, height = image.size
    scale = math.sqrt(0.6)
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))


def hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left to right."""
    return ImageOps.mirror(image)


def jpeg15(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Encode as a JPEG of quality 15 in memory and decode it again."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=15)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def rotate15(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate 15 degrees anticlockwise on the same canvas; the uncovered corners are white."""
    return image.rotate(15, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=_WHITE)


def colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scale brightness, contrast and saturation by factors in [0.6, 1.4]; shift the hue a bit."""
    brightness, contrast, saturation = (float(f) for f in rng.uniform(0.6, 1.4, size=3))
    shift = int(rng.integers(-12, 13))  # out of 256 steps: at most about 17 degrees
    out = ImageEnhance.Brightness(image).enhance(brightness)
    out = ImageEnhance.Contrast(out).enhance(contrast)
    out = ImageEnhance.Color(out).enhance(saturation)
    hue, sat, val = out.convert("HSV").split()
    hue = hue.point([(i + shift) % 256 for i in range(256)])
    return Image.merge("HSV", (hue, sat, val)).convert("RGB")


def downscale4(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shrink each side four times (the copy stays small)."""
    width, height = image.size
    size = (max(1, round(width / 4)), max(1, round(height / 4)))
    return image.resize(size, resample=Image.Resampling.LANCZOS)


def border_text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Add a solid border of 8 % of each side, in a random colour, and a line of text."""
    width, height = image.size
    pad_x, pad_y = max(1, round(0.08 * width)), max(1, round(0.08 * height))
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    out = ImageOps.expand(image, border=(pad_x, pad_y, pad_x, pad_y), fill=fill)
    font = ImageFont.load_default(size=max(10, height // 12))
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = (int(v) for v in draw.textbbox((0, 0), _TEXT, font=font))
    x_room = max(1, out.width - (right - left))
    y_room = max(1, out.height - (bottom - top))
    x = int(rng.integers(0, x_room))
    y = int(rng.integers(y_room // 2, y_room))  # in the lower half, like a watermark
    draw.text((x - left, y - top), _TEXT, fill=_WHITE, font=font, stroke_width=1, stroke_fill=0)
    return out


def grey(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Convert to greyscale, returned as RGB with three equal channels."""
    return image.convert("L").convert("RGB")


def combo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``crop60``, then ``jpeg15``, then ``colour``, drawing from the same generator."""
    return colour(jpeg15(crop60(image, rng), rng), rng)


@dataclass(frozen=True)
class Edit:
    """One registered edit: its file-name tag, a one-line description and the function."""

    name: str
    description: str
    apply: EditFn


EDITS: tuple[Edit, ...] = (
    Edit("crop60", "crop keeping 60 % of the area at a random offset", crop60),
    Edit("hflip", "horizontal mirror", hflip),
    Edit("jpeg15", "re-encoded as JPEG quality 15", jpeg15),
    Edit("rotate15", "rotated 15 degrees, white corners", rotate15),
    Edit("colour", "brightness/contrast/saturation x[0.6, 1.4] and a small hue shift", colour),
    Edit("downscale4", "each side shrunk 4x", downscale4),
    Edit("border_text", "8 % solid border and a line of text", border_text),
    Edit("grey", "greyscale", grey),
    Edit("combo", "crop60, then jpeg15, then colour", combo),
)
EDIT_NAMES: tuple[str, ...] = tuple(edit.name for edit in EDITS)


@dataclass(frozen=True)
class CopyPair:
    """An edited copy, the original it was made from, and the edit's name."""

    copy: Path
    original: Path
    edit: str


@dataclass(frozen=True)
class CopySet:
    """What :func:`make_copy_set` wrote under ``root``: originals and copies, in input order."""

    root: Path
    originals: tuple[Path, ...]
    copies: tuple[CopyPair, ...]


def _check_name(name: str, seen: set[str]) -> None:
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or name in {".", ".."} or any(sep in name for sep in separators):
        raise ValueError(f"original name {name!r} is not a plain file name; drop the path")
    if "__" in name:
        raise ValueError(
            f"original name {name!r} contains '__', which separates name and edit in copy names"
        )
    if name in seen:
        raise ValueError(f"original name {name!r} is given twice; names must be unique")
    seen.add(name)


def _save_jpeg(image: Image.Image, path: Path) -> None:
    image.convert("RGB").save(path, format="JPEG", quality=_SAVE_QUALITY)


def make_copy_set(
    originals: Sequence[tuple[str, Image.Image]],
    out_dir: Path,
    *,
    seed: int = 0,
    edits: Sequence[str] | None = None,
) -> CopySet:
    """Write ``originals/<name>.jpg`` and ``copies/<name>__<edit>.jpg`` under ``out_dir``.

    Every file is a quality-95 JPEG (``jpeg15`` and ``combo`` carry their own, heavier
    degradation inside). The copy of original ``i`` by the edit registered at position ``j`` of
    :data:`EDITS` draws from ``numpy.random.default_rng([seed, i, j])``, so a copy does not
    depend on the other originals or on which edits are asked for. ``edits`` defaults to all.
    """
    wanted = EDIT_NAMES if edits is None else tuple(edits)
    unknown = [name for name in wanted if name not in EDIT_NAMES]
    if unknown:
        raise ValueError(
            f"unknown edit(s) {', '.join(map(repr, unknown))}; valid edits: {', '.join(EDIT_NAMES)}"
        )
    seen: set[str] = set()
    for name, _ in originals:
        _check_name(name, seen)

    root = Path(out_dir)
    originals_dir, copies_dir = root / "originals", root / "copies"
    originals_dir.mkdir(parents=True, exist_ok=True)
    copies_dir.mkdir(parents=True, exist_ok=True)

    original_paths: list[Path] = []
    pairs: list[CopyPair] = []
    for index, (name, image) in enumerate(originals):
        rgb = image.convert("RGB")
        original_path = originals_dir / f"{name}.jpg"
        _save_jpeg(rgb, original_path)
        original_paths.append(original_path)
        for edit_name in wanted:
            edit_index = EDIT_NAMES.index(edit_name)
            rng = np.random.default_rng([seed, index, edit_index])
            copy_path = copies_dir / f"{name}__{edit_name}.jpg"
            _save_jpeg(EDITS[edit_index].apply(rgb, rng), copy_path)
            pairs.append(CopyPair(copy=copy_path, original=original_path, edit=edit_name))
    return CopySet(root=root, originals=tuple(original_paths), copies=tuple(pairs))


# (name in the set, skimage.data function, index into its result when it returns a tuple);
# only photographs bundled with scikit-image: no synthetic, greyscale or downloaded images.
_SKIMAGE_PHOTOS: tuple[tuple[str, str, int | None], ...] = (
    ("astronaut", "astronaut", None),
    ("chelsea", "chelsea", None),  # data.cat() is the same picture
    ("coffee", "coffee", None),
    ("rocket", "rocket", None),
    ("hubble_deep_field", "hubble_deep_field", None),
    ("immunohistochemistry", "immunohistochemistry", None),
    ("motorcycle_left", "stereo_motorcycle", 0),
    ("retina", "retina", None),
)


def skimage_originals() -> list[tuple[str, Image.Image]]:
    """The colour photographs bundled with scikit-image, as RGB ``uint8`` PIL images.

    Those missing from the installed version are skipped; none needs the network.
    """
    from skimage import data

    photos: list[tuple[str, Image.Image]] = []
    for name, function, item in _SKIMAGE_PHOTOS:
        loader = getattr(data, function, None)
        if loader is None:
            continue
        result = loader()
        array = np.asarray(result if item is None else result[item])
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            continue
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        photos.append((name, Image.fromarray(np.ascontiguousarray(array[:, :, :3])).convert("RGB")))
    return photos
