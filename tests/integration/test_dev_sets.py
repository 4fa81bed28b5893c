"""benchmarks/dev_sets.py builds the development sets in the layouts `lookalike evaluate` reads
(here from scikit-image photos and a made-up stamps tree: CI has no wallpaper or stamp package)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.datasets import copy_detection, labelled_folder, ukbench
from tests.helpers import cli_env

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dev_sets.py"


def _stamp(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 24, 4), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGBA").save(path)


def test_dev_sets_build_copies_views_and_categories(tmp_path: Path) -> None:
    photos, stamps, out = tmp_path / "photos", tmp_path / "stamps", tmp_path / "dev"
    photos.mkdir()
    for name, image in skimage_originals()[:5]:
        image.thumbnail((200, 200))
        image.save(photos / f"{name}.jpg", quality=90)
    (photos / f"{name}-d.png").write_bytes((photos / f"{name}.jpg").read_bytes())  # a variant
    counts = {"animals/birds": 12, "animals/fish": 4, "animals/lizards": 7, "symbols/abc": 15}
    counts |= {"vehicles": 10, "food": 3}
    for number, (folder, count) in enumerate(counts.items()):
        for i in range(count):
            _stamp(stamps / folder / f"s{i}.png", 100 * number + i)

    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--only", "copies,views,categories",
         "--photos", str(photos), "--stamps", str(stamps)],
        capture_output=True, text=True, timeout=120, env=cli_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "views: 5 groups of 4 views" in result.stdout

    views = ukbench(out / "views")
    assert len(views.items) == 20 and len({i.group for i in views.items}) == 5
    with Image.open(views.items[0].path) as first, Image.open(views.items[1].path) as second:
        assert (
            first.size != second.size or np.asarray(first).tolist() != np.asarray(second).tolist()
        )

    copies = copy_detection(
        out / "copies" / "originals", tmp_path / "work", distractors=out / "copies" / "distractors"
    )
    # Originals: scikit-image's 8 and every third of the 5 photos; the 3 others are distractors.
    assert len([i for i in copies.items if not i.query]) == 8 + 5
    assert len(list((out / "copies" / "distractors").iterdir())) == 3

    categories = labelled_folder(out / "categories")
    sizes = Counter(item.group for item in categories.items)
    # fish (4) and lizards (7) merge into animals-other; symbols and small food are left out.
    assert sizes == {"animals-birds": 12, "animals-other": 11, "vehicles": 10}
