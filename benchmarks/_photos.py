"""Real-size JPEG photos for benchmarks, made from scikit-image's colour photos (seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.evaluation.copies import skimage_originals


def make_photo_folder(folder: Path, count: int, *, seed: int = 0) -> list[Path]:
    """``count`` JPEGs of 1 to 4 megapixels: each a random crop of a photo (sometimes tiled
    2x2 with flipped neighbours), upscaled with bicubic resampling, saved at quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(seed)
    originals = [image for _, image in skimage_originals()]
    paths = []
    for i in range(count):
        base = originals[i % len(originals)]
        if rng.random() < 0.4:
            tile = Image.new("RGB", (base.width * 2, base.height * 2))
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
                part = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if (dx + dy) % 2 else base
                tile.paste(part, (dx * base.width, dy * base.height))
            base = tile
        fraction = rng.uniform(0.6, 1.0)
        w, h = int(base.width * fraction), int(base.height * fraction)
        x, y = int(rng.integers(0, base.width - w + 1)), int(rng.integers(0, base.height - h + 1))
        crop = base.crop((x, y, x + w, y + h))
        megapixels = rng.uniform(1.0, 4.0)
        scale = (megapixels * 1e6 / (w * h)) ** 0.5
        photo = crop.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
        path = folder / f"photo{i:04d}.jpg"
        photo.save(path, quality=90)
        paths.append(path)
    return paths
