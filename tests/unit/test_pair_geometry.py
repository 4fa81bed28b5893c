"""The strict geometric check of undecided duplicate pairs: how far a homography is from a
similarity transform, and the acceptance on real photos (a rotated copy, a mirrored crop,
an unrelated photo, a file that is gone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import InvalidInputError
from lookalike.evaluation.copies import skimage_originals
from lookalike.query.geometry import GeometricVerifier, PairGeometry, SimilarityAcceptance


def _geometry(h: list[list[float]]) -> PairGeometry:
    return PairGeometry(100, 100, np.array(h, dtype=np.float64), 512)


def test_distortion_is_small_for_a_similarity_and_large_otherwise() -> None:
    angle = np.deg2rad(12.0)
    c, s = 1.3 * np.cos(angle), 1.3 * np.sin(angle)
    assert _geometry([[c, -s, 40.0], [s, c, -7.0], [0.0, 0.0, 1.0]]).distortion() < 1e-9
    # Twice as tall as wide: a stretch no rotation or crop makes.
    assert _geometry([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]).distortion() == 0.5
    assert _geometry([[1.0, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).distortion() > 0.5
    tilted = _geometry([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.002, 0.0, 1.0]])
    assert tilted.distortion() == pytest.approx(0.002 * 512)
    assert _geometry([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).distortion() == np.inf
    assert PairGeometry(3, 0, None, 512).distortion() == np.inf
    assert _geometry([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]).scale() == 2.0


def test_acceptance_needs_inliers_a_high_ratio_and_a_near_similarity() -> None:
    accept = SimilarityAcceptance(min_inliers=20, min_inlier_ratio=0.85, max_distortion=0.75)
    good = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    h = np.array(good)
    assert accept.accepts(PairGeometry(30, 30, h, 512))
    assert not accept.accepts(PairGeometry(19, 19, h, 512))  # too few inliers
    assert not accept.accepts(PairGeometry(100, 60, h, 512))  # most matches fit no homography
    stretched = np.array([[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    assert not accept.accepts(PairGeometry(30, 30, stretched, 512))
    assert not accept.accepts(None)
    with pytest.raises(InvalidInputError, match="min_inliers"):
        SimilarityAcceptance(min_inliers=2)
    with pytest.raises(InvalidInputError, match="min_inlier_ratio"):
        SimilarityAcceptance(min_inlier_ratio=1.5)
    with pytest.raises(InvalidInputError, match="max_distortion"):
        SimilarityAcceptance(max_distortion=-0.1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("geometry")
    images = dict(skimage_originals())
    coffee = images["coffee"]
    coffee.save(root / "coffee.jpg", quality=92)
    coffee.rotate(11, expand=True, fillcolor="white").save(root / "rotated.jpg", quality=90)
    w, h = coffee.size
    crop = coffee.crop((w // 5, h // 5, w * 4 // 5, h * 4 // 5))
    crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "mirror-crop.jpg", quality=90)
    images["rocket"].save(root / "rocket.jpg", quality=92)
    images["chelsea"].save(root / "chelsea.jpg", quality=92)
    return root


def test_rotated_and_mirrored_copies_pass_and_other_photos_do_not(photos: Path) -> None:
    verifier, accept = GeometricVerifier(), SimilarityAcceptance()

    def passes(a: str, b: str) -> bool:
        return accept.accepts(verifier.pair_geometry(str(photos / a), str(photos / b)))

    assert passes("coffee.jpg", "rotated.jpg")
    assert passes("mirror-crop.jpg", "coffee.jpg")
    assert not passes("coffee.jpg", "rocket.jpg")
    assert not passes("chelsea.jpg", "rocket.jpg")
    assert verifier.pair_geometry(str(photos / "gone.jpg"), str(photos / "coffee.jpg")) is None
    assert not passes("gone.jpg", "coffee.jpg")
