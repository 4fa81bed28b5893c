"""A photo-archive duplicate set: originals, their copies of every tier, and distractors.

:func:`make_duplicate_set` writes each original and, seeded, one file per variant below, named
``<original>__<variant>.<ext>`` inside ``families/<original>/``; distractors are copied as
given under ``distractors/``. Each variant's tier is what a duplicate finder should call its
pair with the original:

- identical: ``identical`` (the same bytes);
- same picture: ``resize50`` (each side halved), ``recompress70`` (JPEG quality 70),
  ``png`` (re-encoded losslessly as PNG);
- edited copy: ``crop60`` (60 % of the area), ``rotate`` (3 to 15 degrees either way, white
  corners), ``jpeg_low`` (JPEG quality 12 to 15), ``colour`` (brightness, contrast,
  saturation, hue), ``rescale5`` (shrunk 5x and enlarged back), ``mirror_crop`` (mirrored,
  then 75 % of the area), ``banner`` (a strip with a line of text over the bottom);
- similar shot: ``shot`` (another shot of the scene: a shifted 55-80 % crop, a change of
  viewpoint and of light).
"""

from __future__ import annotations

import io
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from lookalike.duplicates.report import Tier
from lookalike.evaluation.copies import colour, crop60

VariantFn = Callable[[Image.Image, np.random.Generator], Image.Image]

_WHITE = (255, 255, 255)
_TEXT = "Holiday 2026 - lookalike"


def _reencoded(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def resize50(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.resize(
        (max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS
    )


def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.uniform(3, 15) * rng.choice([-1, 1]))
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=_WHITE)


def jpeg_low(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _reencoded(image, int(rng.integers(12, 16)))


def rescale5(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = image.resize(
        (max(1, image.width // 5), max(1, image.height // 5)), Image.Resampling.BILINEAR
    )
    return small.resize(image.size, Image.Resampling.BILINEAR)


def _crop_area(image: Image.Image, rng: np.random.Generator, fraction: float) -> Image.Image:
    scale = math.sqrt(fraction)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    left = int(rng.integers(0, image.width - w + 1))
    top = int(rng.integers(0, image.height - h + 1))
    return image.crop((left, top, left + w, top + h))


def mirror_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _crop_area(ImageOps.mirror(image), rng, 0.75)


def banner(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    strip = max(8, round(out.height * rng.uniform(0.10, 0.16)))
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw.rectangle((0, out.height - strip, out.width, out.height), fill=fill)
    font = ImageFont.load_default(size=max(8, round(strip * 0.6)))
    draw.text((round(out.width * 0.04), out.height - strip * 0.8), _TEXT, fill=_WHITE, font=font)
    return out


def shot(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another shot of the scene: the viewpoint moved (corners pulled in by up to 8 %), a
    shifted crop of 55-80 % of the area, other light."""
    w, h = image.size
    pull = rng.uniform(0.0, 0.08, size=8) * np.array([w, h] * 4)
    quad = np.array([0, 0, 0, h, w, h, w, 0], dtype=float)
    quad += pull * np.array([1, 1, 1, -1, -1, -1, -1, 1])
    moved = image.transform((w, h), Image.Transform.QUAD, tuple(quad), Image.Resampling.BICUBIC)
    out = _crop_area(moved, rng, float(rng.uniform(0.55, 0.8)))
    brightness, contrast = (float(f) for f in rng.uniform(0.8, 1.2, size=2))
    out = ImageEnhance.Brightness(out).enhance(brightness)
    return ImageEnhance.Contrast(out).enhance(contrast)


@dataclass(frozen=True)
class Variant:
    """One way a file can be a duplicate of an original: its name, tier, function and the
    format it is saved in (None: the identical file, copied byte for byte)."""

    name: str
    tier: Tier
    apply: VariantFn | None
    save: tuple[str, int] | None = ("JPEG", 95)


VARIANTS: tuple[Variant, ...] = (
    Variant("identical", Tier.IDENTICAL, None, None),
    Variant("resize50", Tier.SAME_PICTURE, resize50),
    Variant("recompress70", Tier.SAME_PICTURE, lambda image, rng: image, ("JPEG", 70)),
    Variant("png", Tier.SAME_PICTURE, lambda image, rng: image, ("PNG", 0)),
    Variant("crop60", Tier.EDITED_COPY, crop60),
    Variant("rotate", Tier.EDITED_COPY, rotate),
    Variant("jpeg_low", Tier.EDITED_COPY, jpeg_low),
    Variant("colour", Tier.EDITED_COPY, colour),
    Variant("rescale5", Tier.EDITED_COPY, rescale5),
    Variant("mirror_crop", Tier.EDITED_COPY, mirror_crop),
    Variant("banner", Tier.EDITED_COPY, banner),
    Variant("shot", Tier.SIMILAR_SHOT, shot),
)
VARIANT_TIERS: dict[str, Tier] = {v.name: v.tier for v in VARIANTS}


@dataclass(frozen=True)
class DuplicateSet:
    """What :func:`make_duplicate_set` wrote: each family's files (original first) with their
    variant name ("original" for the original), and the distractors."""

    root: Path
    families: dict[str, list[tuple[Path, str]]]
    distractors: tuple[Path, ...]


def make_duplicate_set(
    originals: Sequence[tuple[str, Image.Image]],
    distractors: Sequence[Path],
    out_dir: Path,
    *,
    seed: int = 0,
) -> DuplicateSet:
    """Write the set under ``out_dir``: ``families/<name>/`` (the original as a quality-92
    JPEG and every variant) and ``distractors/`` (numbered copies of the given files)."""
    root = Path(out_dir)
    families: dict[str, list[tuple[Path, str]]] = {}
    for number, (name, image) in enumerate(originals):
        folder = root / "families" / name
        folder.mkdir(parents=True, exist_ok=True)
        rgb = image.convert("RGB")
        original = folder / f"{name}.jpg"
        rgb.save(original, format="JPEG", quality=92)
        files = [(original, "original")]
        with Image.open(original) as stored:
            base = stored.convert("RGB")
        for position, variant in enumerate(VARIANTS):
            rng = np.random.default_rng([seed, number, position])
            if variant.apply is None or variant.save is None:
                target = folder / f"{name}__{variant.name}.jpg"
                shutil.copyfile(original, target)
            else:
                fmt, quality = variant.save
                suffix = ".png" if fmt == "PNG" else ".jpg"
                target = folder / f"{name}__{variant.name}{suffix}"
                edited = variant.apply(base, rng).convert("RGB")
                if fmt == "PNG":
                    edited.save(target, format="PNG")
                else:
                    edited.save(target, format="JPEG", quality=quality)
            files.append((target, variant.name))
        families[name] = files
    folder = root / "distractors"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, path in enumerate(distractors):
        target = folder / f"{number:05d}-{path.name}"
        shutil.copyfile(path, target)
        written.append(target)
    return DuplicateSet(root, families, tuple(written))
