"""A small photo archive as people's archives look: an original, a resized phone copy with an
older EXIF date, a byte-identical backup, a lossless PNG of another photo, one photo alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

TAKEN = 0x0132  # EXIF DateTime (read_facts falls back to it)


def _save(image: Image.Image, path: Path, *, taken: str | None = None, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if taken is not None:
        exif[TAKEN] = taken
    image.save(path, exif=exif, **kw)
    return path


def make_archive(small_photos: Path, root: Path) -> Path:
    """chelsea: original, a half-size copy (older EXIF date), a byte-identical copy;
    coffee: original JPEG and a PNG of it (larger file, same pixels); rocket: alone."""
    archive = root / "archive"
    chelsea = Image.open(small_photos / "animals" / "chelsea.jpg")
    coffee = Image.open(small_photos / "things" / "coffee.jpg")
    _save(chelsea, archive / "originals" / "chelsea.jpg", taken="2021:05:01 10:00:00", quality=95)
    half = chelsea.resize((chelsea.width // 2, chelsea.height // 2), Image.Resampling.LANCZOS)
    _save(half, archive / "phone" / "chelsea-small.jpg", taken="2019:01:02 03:04:05", quality=90)
    (archive / "backup").mkdir()
    shutil.copy(archive / "originals" / "chelsea.jpg", archive / "backup" / "chelsea.jpg")
    _save(coffee, archive / "originals" / "coffee.jpg", quality=90)
    _save(coffee, archive / "backup" / "coffee.png")
    shutil.copy(small_photos / "things" / "rocket.jpg", archive / "originals" / "rocket.jpg")
    for number, path in enumerate(sorted(archive.rglob("*.*"))):
        os.utime(path, (1_600_000_000 + 60 * number, 1_600_000_000 + 60 * number))
    os.utime(archive / "phone" / "chelsea-small.jpg", ns=(1_700_000_000_000_000_000,) * 2)
    return archive
