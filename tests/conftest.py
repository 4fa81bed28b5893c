"""Shared fixtures: real photos (scikit-image), a copy-detection set, built indexes.

Expensive fixtures are session-scoped; every random choice is seeded. Tests about the engine
(indexing, storage, filters, the CLI and web plumbing) use the ``pixels`` embedder, which is
real but fast; only tests about model quality use the default network (and are marked heavy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet, make_copy_set, skimage_originals

#: The fast, real embedder for tests that are not about model quality (32 x 32 RGB, 3,072-d).
FAST_EMBEDDER = "pixels"
FAST_DIM = 32 * 32 * 3
#: The copy-set edits that raw pixels see through: a copy made with one of these finds its
#: original at rank 1 with ``FAST_EMBEDDER`` (mirrors, crops and rotations need the network).
FAST_EDITS = ("jpeg15", "colour", "downscale4")

GREY_DISTRACTORS = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
    "brick",
    "grass",
    "gravel",
    "cell",
)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported models go to a per-session folder, never the developer's own cache."""
    folder = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("LOOKALIKE_CACHE_DIR")
    os.environ["LOOKALIKE_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LOOKALIKE_CACHE_DIR", None)
    else:
        os.environ["LOOKALIKE_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def copy_set(tmp_path_factory: pytest.TempPathFactory) -> CopySet:
    """Eight colour photos and nine edited copies of each (seeded)."""
    return make_copy_set(skimage_originals(), tmp_path_factory.mktemp("copyset"), seed=7)


def write_distractors(folder: Path) -> list[Path]:
    """Real photos unrelated to the originals: scikit-image's greyscale photos and 200 faces."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in GREY_DISTRACTORS:
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=92)
        written.append(path)
    faces = skimage.data.lfw_subset()
    for i, face in enumerate(faces):
        pixels = np.clip(face * 255.0, 0, 255).astype(np.uint8)
        path = folder / f"face{i:03d}.jpg"
        Image.fromarray(pixels).resize((100, 100), Image.Resampling.BICUBIC).save(path, quality=92)
        written.append(path)
    return written


@pytest.fixture(scope="session")
def gallery(copy_set: CopySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The originals plus 210 distractor photos, in one folder tree (labels: subfolders)."""
    root = tmp_path_factory.mktemp("gallery")
    originals = root / "originals"
    originals.mkdir()
    for path in copy_set.originals:
        (originals / path.name).write_bytes(path.read_bytes())
    write_distractors(root / "distractors")
    return root


@pytest.fixture(scope="session")
def gallery_index(gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gallery indexed with the default embedder (read-only for tests: copy it to change it)."""
    directory = tmp_path_factory.mktemp("indexes") / "gallery.idx"
    with SearchEngine.create(directory) as engine:
        report = engine.index_folder(gallery)
    assert report.added == len(list(gallery.rglob("*.jpg")))
    return directory


@pytest.fixture(scope="session")
def fast_gallery_index(gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gallery indexed with the fast ``pixels`` embedder (read-only: copy it to change it)."""
    directory = tmp_path_factory.mktemp("indexes") / "gallery-pixels.idx"
    with SearchEngine.create(directory, embedder=FAST_EMBEDDER) as engine:
        report = engine.index_folder(gallery)
        assert engine.manifest.dim == FAST_DIM
    assert report.added == len(list(gallery.rglob("*.jpg")))
    return directory


@pytest.fixture(scope="session")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six colour photos in two labelled subfolders, for tests that re-index often."""
    root = tmp_path_factory.mktemp("small")
    photos = dict(skimage_originals())
    for label, names in {
        "animals": ("chelsea", "astronaut"),
        "things": ("coffee", "rocket", "motorcycle_left", "retina"),
    }.items():
        (root / label).mkdir()
        for name in names:
            photos[name].save(root / label / f"{name}.jpg", quality=90)
    return root
