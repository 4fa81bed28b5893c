"""Where copy mode's inlier threshold comes from: the inliers geometric verification counts
between each edited copy of the copy-detection set and its original (true pairs), and
between each copy and every other original and 30 unrelated photos (false pairs), per edit.

Usage: python benchmarks/verify_thresholds.py [--seed 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.evaluation.copies import make_copy_set, skimage_originals
from lookalike.query.geometry import DEFAULT_MIN_INLIERS, GeometricVerifier, load_grey

GREY_PHOTOS = ("camera", "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel")


def unrelated_photos(folder: Path) -> list[Path]:
    """Nine greyscale scikit-image photos and 21 small face photos (LFW subset)."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in GREY_PHOTOS:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=92)
        paths.append(path)
    for i, face in enumerate(skimage.data.lfw_subset()[:21]):
        path = folder / f"face{i:02d}.jpg"
        pixels = np.clip(face * 255.0, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((100, 100), Image.Resampling.BICUBIC).save(path, quality=92)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()
    copies = make_copy_set(skimage_originals(), args.workdir / "copyset", seed=args.seed)
    others = unrelated_photos(args.workdir / "unrelated")
    verifier = GeometricVerifier()
    true_min: dict[str, int] = {}
    false_max: dict[str, int] = {}
    for pair in copies.copies:
        query = verifier.query_features(load_grey(pair.copy, verifier.side))
        true = verifier.inliers(query, str(pair.original)) or 0
        true_min[pair.edit] = min(true_min.get(pair.edit, true), true)
        for other in [o for o in copies.originals if o != pair.original] + others:
            false = verifier.inliers(query, str(other)) or 0
            false_max[pair.edit] = max(false_max.get(pair.edit, 0), false)
    print(
        f"{len(copies.copies)} copies of {len(copies.originals)} photos (seed {args.seed}), each "
        f"against its original and {len(copies.originals) - 1 + len(others)} other photos; "
        f"threshold {DEFAULT_MIN_INLIERS}"
    )
    print(f"{'edit':<14}{'fewest inliers, copy':>22}{'most inliers, other':>22}")
    for edit in true_min:
        print(f"{edit:<14}{true_min[edit]:>22}{false_max[edit]:>22}")
    print(f"{'all':<14}{min(true_min.values()):>22}{max(false_max.values()):>22}")


if __name__ == "__main__":
    main()
