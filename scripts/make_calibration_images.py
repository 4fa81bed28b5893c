"""Write the calibration photos that int8 quantisation of the EfficientNet-Lite embedders uses.

Crops (seeded) of scikit-image's public-domain and CC0 sample photos, 288 px, JPEG quality 90,
into src/lookalike/embedders/calibration/. Run once by a developer (needs scikit-image); the
files ship inside the package, so quantising works offline and gives the same model everywhere.

Usage: python scripts/make_calibration_images.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

#: NASA (public domain) and CC0 photos among scikit-image's samples.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
CROPS_PER_PHOTO = 8
SIDE = 288


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "src/lookalike/embedders/calibration"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()[..., :3])
        width, height = photo.size
        for number in range(CROPS_PER_PHOTO):
            side = int(min(width, height) * rng.uniform(0.35, 1.0))
            left = int(rng.integers(0, width - side + 1))
            top = int(rng.integers(0, height - side + 1))
            crop = photo.crop((left, top, left + side, top + side)).resize((SIDE, SIDE))
            if number % 2:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop.save(out / f"{name}-{number}.jpg", quality=90)


if __name__ == "__main__":
    main()
