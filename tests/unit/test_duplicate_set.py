"""The duplicate-set generator: one file per variant, byte copies identical, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.duplicates.report import Tier
from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.duplicate_set import VARIANT_TIERS, VARIANTS, make_duplicate_set


def test_every_variant_is_written_and_seeded(tmp_path: Path) -> None:
    coffee = dict(skimage_originals())["coffee"].resize((200, 150))
    distractor = tmp_path / "other.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(distractor)
    made = make_duplicate_set([("coffee", coffee)], [distractor], tmp_path / "a", seed=1)
    again = make_duplicate_set([("coffee", coffee)], [distractor], tmp_path / "b", seed=1)
    files = made.families["coffee"]
    assert [v for _, v in files] == ["original", *(v.name for v in VARIANTS)]
    original = files[0][0]
    with Image.open(original) as image:
        base = np.asarray(image.convert("RGB"), dtype=np.int16)
    for (path, variant), (twin, _) in zip(files[1:], again.families["coffee"][1:], strict=True):
        assert path.read_bytes() == twin.read_bytes(), variant  # seeded: the same file
        if VARIANT_TIERS[variant] is Tier.IDENTICAL:
            assert path.read_bytes() == original.read_bytes()
            continue
        assert path.read_bytes() != original.read_bytes(), variant
        with Image.open(path) as image:
            assert image.format == ("PNG" if variant == "png" else "JPEG")
            pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        if variant == "png":
            assert np.array_equal(pixels, base)
        elif variant == "resize50":
            assert pixels.shape[:2] == (base.shape[0] // 2, base.shape[1] // 2)
        elif variant in ("crop60", "mirror_crop", "shot"):
            assert pixels.shape[0] * pixels.shape[1] < 0.85 * base.shape[0] * base.shape[1]
        else:
            assert pixels.shape == base.shape and np.abs(pixels - base).mean() > 1.0, variant
    assert [p.read_bytes() for p in made.distractors] == [distractor.read_bytes()]
