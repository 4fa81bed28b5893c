"""Development sets for retrieval quality, rebuilt from Debian and PyPI packages on a fresh
machine (seeded: the same packages and seed give the same files).

Install the data (Debian packages; scikit-image comes with lookalike's test extras):

    apt-get install dataset-fashion-mnist tuxpaint-stamps-default \\
        ukui-wallpapers lomiri-wallpapers plasma-workspace-wallpapers

Debian's gcompris-qt-data is reserved for independent evaluation: never build from it.

Build: python benchmarks/dev_sets.py OUT [--seed 0] [--only copies,views,...]

What lands under OUT (each set is skipped, with a note, when its package is missing):

- ``copies/originals``: scikit-image's colour photos and every third wallpaper photo (at most
  ``--photo-originals``, default 30), and ``copies/distractors``: the other wallpaper photos
  (long side 1,024 px), unrelated to them. The edited copies (crop, mirror,
  JPEG, rotation, colour, downscale, border and text, grey, combo) are made by
  ``lookalike evaluate --kind copies`` itself, seeded;
- ``categories/<class>``: tuxpaint stamps labelled by folder: the class is the first two
  folder levels below the stamps folder (``animals-birds``, ``food-fruit``, ``vehicles``...),
  deeper folders merged into it, and second-level folders under 10 images merged into
  ``<first>-other``; ``symbols`` (letters, coins) is left out, and so are classes still under
  10 images; at most 40 images a class (a seeded choice);
- ``views``: UKBench layout (``ukbench00000.jpg``...): four views of each wallpaper photo, each
  a different crop (scale and position), one rotated a few degrees, one warped in perspective,
  one with other lighting;
- ``fashion-mnist/<class>``: the first N (default 2,000) Fashion-MNIST test images.

Then, for each set (the ablation compares the old recipe with each step of the new one):

    lookalike evaluate OUT/copies/originals --kind copies \\
        --distractors OUT/copies/distractors --ablation -o reports/copies
    lookalike evaluate OUT/categories --ablation -o reports/categories
    lookalike evaluate OUT/views --ablation -o reports/views
    lookalike evaluate OUT/fashion-mnist --ablation -o reports/fashion-mnist
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from lookalike.evaluation.copies import skimage_originals
from lookalike.evaluation.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx

PHOTO_DIRS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
SETS = ("copies", "categories", "views", "fashion-mnist")
_VARIANT = re.compile(r"(-(l|d|day|night|dark|light|morning|evening))+$", re.IGNORECASE)


def wallpaper_photos(folders: Sequence[Path]) -> list[Path]:
    """One file per wallpaper: the largest of its sizes (plasma ships one folder of sizes per
    wallpaper) or of its light and dark variants (gnome's ``-l`` / ``-d``), sorted by name."""
    best: dict[str, tuple[int, Path]] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in PHOTO_SUFFIXES or not path.is_file():
                continue
            parts = path.relative_to(folder).parts
            key = parts[0] if "contents" in parts else _VARIANT.sub("", path.stem)
            size = path.stat().st_size
            if key not in best or size > best[key][0]:
                best[key] = (size, path)
    return [best[key][1] for key in sorted(best)]


def _load(path: Path, long_side: int) -> Image.Image:
    with Image.open(path) as image:
        image.draft("RGB", (long_side, long_side))
        rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    flat.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return flat


def build_copies(out: Path, photos: Sequence[Path], photo_originals: int) -> str:
    """scikit-image's photos and every third wallpaper photo (up to ``photo_originals``) as
    originals, the other wallpaper photos as distractors."""
    originals, distractors = out / "copies" / "originals", out / "copies" / "distractors"
    for folder in (originals, distractors):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    named = skimage_originals()
    for name, image in named:
        image.save(originals / f"{name}.jpg", quality=95)
    chosen = set(range(0, len(photos), 3)[:photo_originals])
    for number, path in enumerate(photos):
        folder = originals if number in chosen else distractors
        _load(path, 1024).save(folder / f"{number:03d}-{path.stem}.jpg", quality=92)
    count = len(named) + len(chosen)
    return (
        f"{count} originals ({len(named)} scikit-image photos, {len(chosen)} wallpapers; "
        f"x9 edited copies as queries), {len(photos) - len(chosen)} distractors"
    )


def stamp_classes(stamps: Path, *, minimum: int, maximum: int, seed: int) -> dict[str, list[Path]]:
    """Class -> stamp files, by the rule in the module docstring."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(stamps.rglob("*.png")):
        parts = path.relative_to(stamps).parts[:-1]
        if not parts or parts[0] == "symbols":
            continue
        found["-".join(parts[:2])].append(path)
    merged: dict[str, list[Path]] = defaultdict(list)
    for label, paths in found.items():
        small = len(paths) < minimum and "-" in label
        merged[label.split("-")[0] + "-other" if small else label] += paths
    rng = np.random.default_rng(seed)
    classes = {}
    for label, paths in sorted(merged.items()):
        if len(paths) < minimum:
            continue
        if len(paths) > maximum:
            keep = np.sort(rng.choice(len(paths), size=maximum, replace=False))
            paths = [paths[i] for i in keep]
        classes[label] = paths
    return classes


def build_categories(out: Path, stamps: Path, seed: int) -> str:
    root = out / "categories"
    shutil.rmtree(root, ignore_errors=True)
    classes = stamp_classes(stamps, minimum=10, maximum=40, seed=seed)
    for label, paths in classes.items():
        (root / label).mkdir(parents=True)
        for path in paths:
            name = "-".join(path.relative_to(stamps).parts)
            shutil.copyfile(path, root / label / name)
    sizes = ", ".join(f"{label} {len(paths)}" for label, paths in classes.items())
    return f"{sum(map(len, classes.values()))} images in {len(classes)} classes ({sizes})"


def _crop(image: Image.Image, rng: np.random.Generator, low: float, high: float) -> Image.Image:
    """A crop of ``low``-``high`` of the area, same aspect, centred in the middle half (two
    views of a photo share part of the scene, not all of it)."""
    scale = math.sqrt(rng.uniform(low, high))
    w, h = round(image.width * scale), round(image.height * scale)
    cx = image.width * rng.uniform(0.25, 0.75)
    cy = image.height * rng.uniform(0.25, 0.75)
    left = int(min(max(cx - w / 2, 0), image.width - w))
    top = int(min(max(cy - h / 2, 0), image.height - h))
    return image.crop((left, top, left + w, top + h))


def _rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotated 4-12 degrees either way, then cropped to the part without corners."""
    angle = float(rng.uniform(4, 12) * rng.choice([-1, 1]))
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC)
    margin = math.sin(math.radians(abs(angle)))
    dx, dy = round(image.height * margin), round(image.width * margin * 0.6)
    return turned.crop((dx, dy, image.width - dx, image.height - dy))


def _perspective(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The corners moved inwards by up to 15 % of each side: a change of viewpoint."""
    w, h = image.size
    jitter = rng.uniform(0.0, 0.15, size=8) * np.array([w, h] * 4)
    # Where each output corner samples the input: top-left, top-right, bottom-right, bottom-left.
    corners = np.array([0, 0, w, 0, w, h, 0, h], dtype=float)
    corners += jitter * np.array([1, 1, -1, 1, -1, -1, 1, -1])
    source = corners.reshape(4, 2)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coefficients = np.linalg.solve(np.array(rows), source.reshape(8))
    return image.transform(
        (w, h), Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BICUBIC
    )


def _lighting(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and colour changed, a touch of blur (another camera, other light)."""
    brightness, contrast, saturation = rng.uniform(0.5, 1.5, size=3)
    out = ImageEnhance.Brightness(image).enhance(float(brightness))
    out = ImageEnhance.Contrast(out).enhance(float(contrast))
    out = ImageEnhance.Color(out).enhance(float(saturation))
    return out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 2.0))))


View = Callable[[Image.Image, np.random.Generator], Image.Image]
#: Four views of one photo, each a different crop (25-80 % of the area), like four photos of
#: one object taken from different distances and angles.
VIEWS: tuple[View, ...] = (
    lambda image, rng: _crop(image, rng, 0.5, 0.8),
    lambda image, rng: _rotate(_crop(image, rng, 0.3, 0.5), rng),
    lambda image, rng: _crop(_perspective(image, rng), rng, 0.35, 0.6),
    lambda image, rng: _lighting(_crop(image, rng, 0.25, 0.5), rng),
)


def build_views(out: Path, photos: Sequence[Path], seed: int) -> str:
    root = out / "views"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for number, path in enumerate(photos):
        photo = _load(path, 1024)
        for view_number, view in enumerate(VIEWS):
            rng = np.random.default_rng([seed, number, view_number])
            image = view(photo, rng)
            image.thumbnail((640, 640), Image.Resampling.LANCZOS)
            image.save(root / f"ukbench{4 * number + view_number:05d}.jpg", quality=90)
    return f"{len(photos)} groups of 4 views ({4 * len(photos)} images)"


def build_fashion_mnist(out: Path, source: Path, count: int) -> str:
    root = out / "fashion-mnist"
    shutil.rmtree(root, ignore_errors=True)
    images = read_idx(source / "t10k-images-idx3-ubyte.gz")[:count]
    labels = read_idx(source / "t10k-labels-idx1-ubyte.gz")[:count]
    for number, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / FASHION_MNIST_CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{number:05d}.png")
    return f"{len(images)} test images in 10 classes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(SETS), help="sets, comma-separated")
    parser.add_argument("--photos", type=Path, nargs="*", default=list(PHOTO_DIRS))
    parser.add_argument("--stamps", type=Path, default=STAMPS_DIR)
    parser.add_argument("--fashion-mnist", type=Path, default=FASHION_MNIST_DIR)
    parser.add_argument("--fashion-mnist-images", type=int, default=2000)
    parser.add_argument(
        "--photo-originals", type=int, default=30, help="wallpaper photos among the originals"
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SETS))
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    photos = wallpaper_photos(args.photos)
    builders: dict[str, tuple[Callable[[], str], str | None]] = {
        "copies": (
            lambda: build_copies(args.out, photos, args.photo_originals),
            None if photos else "no wallpaper photos (install the wallpaper packages)",
        ),
        "categories": (
            lambda: build_categories(args.out, args.stamps, args.seed),
            None if args.stamps.is_dir() else f"{args.stamps} missing (tuxpaint-stamps-default)",
        ),
        "views": (
            lambda: build_views(args.out, photos, args.seed),
            None if len(photos) >= 2 else "fewer than two wallpaper photos",
        ),
        "fashion-mnist": (
            lambda: build_fashion_mnist(args.out, args.fashion_mnist, args.fashion_mnist_images),
            None
            if (args.fashion_mnist / "t10k-images-idx3-ubyte.gz").is_file()
            else f"{args.fashion_mnist} missing (dataset-fashion-mnist)",
        ),
    }
    for name in wanted:
        build, missing = builders[name]
        if missing:
            print(f"{name}: skipped: {missing}")
            continue
        print(f"{name}: {build()}  -> {args.out / name}")


if __name__ == "__main__":
    main()
