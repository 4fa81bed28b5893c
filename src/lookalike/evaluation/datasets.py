"""Benchmark datasets, each read from a folder the user supplies (nothing is downloaded) and
described as items with a group: two items are relevant to each other when their groups match.

- labelled folder: one subfolder per class; every image is a query against all the others;
- UKBench layout: ``ukbench00000.jpg`` ... in groups of 4 consecutive images of one object;
- copy detection: a folder of originals; edited copies are generated with a fixed seed
  (see :mod:`lookalike.evaluation.copies`); the copies are the queries, the gallery holds the
  originals and the copies, and a group is one original with its copies; a folder of
  distractors (unrelated photos, relevant to no query) may be hidden in the gallery too;
- Fashion-MNIST: the IDX files of Debian's ``dataset-fashion-mnist`` (or any folder holding
  ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``): the 10,000 test images,
  each a query against the other 9,999.
"""

from __future__ import annotations

import gzip
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.errors import InvalidInputError
from lookalike.evaluation.copies import EDITS, make_copy_set
from lookalike.sources import IMAGE_EXTENSIONS, check_folder, scan_folder

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip
_UKBENCH = re.compile(r"ukbench(\d{5})\.\w+$", re.IGNORECASE)


@dataclass(frozen=True)
class EvalItem:
    """An image of a benchmark: its file, its group, and its roles."""

    path: Path
    group: str
    query: bool = True
    gallery: bool = True


@dataclass(frozen=True)
class Dataset:
    """A benchmark: where its images are and who is relevant to whom."""

    name: str
    kind: str
    root: Path
    items: tuple[EvalItem, ...]

    @property
    def has_ns(self) -> bool:
        """N-S is reported for UKBench and copy-detection layouts."""
        return self.kind in ("ukbench", "copies")

    @property
    def primary_metric(self) -> str:
        return {"ukbench": "ns", "copies": "recall@1"}.get(self.kind, "map")

    def queries(self) -> list[int]:
        return [i for i, item in enumerate(self.items) if item.query]

    def gallery(self) -> list[int]:
        return [i for i, item in enumerate(self.items) if item.gallery]


def labelled_folder(root: Path | str) -> Dataset:
    """One subfolder per class; images directly in ``root`` are refused (they have no label)."""
    base = check_folder(root)
    items = []
    for found in scan_folder(base):
        if found.label is None:
            raise InvalidInputError(
                f"{found.path}: image outside a class subfolder; a labelled folder holds one "
                "subfolder per class"
            )
        items.append(EvalItem(Path(found.path), found.label))
    _require(items, base, "no images in class subfolders")
    if len({i.group for i in items}) < 2:
        raise InvalidInputError(f"{base}: a labelled folder needs at least two class subfolders")
    return Dataset(base.name, "labelled", base, tuple(items))


def ukbench(root: Path | str) -> Dataset:
    """UKBench layout: groups of 4 consecutive ``ukbenchNNNNN`` images of the same object."""
    base = check_folder(root)
    items = []
    for found in scan_folder(base):
        match = _UKBENCH.search(Path(found.path).name)
        if match:
            items.append(EvalItem(Path(found.path), f"{int(match.group(1)) // 4:05d}"))
    _require(items, base, "no ukbenchNNNNN.jpg files")
    return Dataset(base.name, "ukbench", base, tuple(items))


def copy_detection(
    originals: Path | str,
    work_dir: Path,
    *,
    seed: int = 0,
    distractors: Path | str | None = None,
) -> Dataset:
    """Edited copies of every image in ``originals`` (generated into ``work_dir``, seeded),
    hidden among the images of ``distractors`` (copied into ``work_dir/distractors``), which
    are in the gallery only and each its own group."""
    base = check_folder(originals)
    extra = check_folder(distractors) if distractors is not None else None
    named: list[tuple[str, Image.Image]] = []
    for found in scan_folder(base):
        stem = Path(found.path).stem.replace("__", "_")
        with Image.open(found.path) as image:
            named.append((f"{len(named):04d}-{stem}", image.convert("RGB")))
    if len(named) < 2:
        raise InvalidInputError(f"{base}: copy detection needs at least two original images")
    copies = make_copy_set(named, work_dir, seed=seed)
    items = [EvalItem(p, p.stem, query=False) for p in copies.originals]
    items += [EvalItem(c.copy, c.original.stem) for c in copies.copies]
    name = f"{base.name} copies"
    if extra is not None:
        placed = _place_distractors(extra, copies.root / "distractors")
        items += [EvalItem(p, f"distractor:{p.name}", query=False) for p in placed]
        name += f" among {len(placed)} distractors"
    return Dataset(name, "copies", copies.root, tuple(items))


def _place_distractors(source: Path, target: Path) -> list[Path]:
    """Every image under ``source`` copied into ``target`` (flat, names made unique)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    placed = []
    for number, found in enumerate(scan_folder(source)):
        path = target / f"{number:05d}-{Path(found.path).name}"
        shutil.copyfile(found.path, path)
        placed.append(path)
    if not placed:
        raise InvalidInputError(f"{source}: no distractor images")
    return placed


def fashion_mnist(
    work_dir: Path,
    *,
    source: Path = FASHION_MNIST_DIR,
    limit: int | None = None,
    split: str = "test",
) -> Dataset:
    """A Fashion-MNIST split ('test': 10,000 images, 'train': 60,000) written as PNGs, one
    subfolder per class, under ``work_dir``. Training code uses 'train'; evaluation 'test'."""
    prefix = {"test": "t10k", "train": "train"}.get(split)
    if prefix is None:
        raise InvalidInputError(f"Fashion-MNIST split must be 'test' or 'train', got {split!r}")
    images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or labels.shape != (len(images),):
        raise InvalidInputError(f"{source}: IDX files do not hold matching images and labels")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    root = work_dir / f"fashion-mnist-{split}"
    items = []
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        name = FASHION_MNIST_CLASSES[int(label)]
        path = root / name / f"{index:05d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, mode="L").save(path)
        items.append(EvalItem(path, name))
    return Dataset(
        f"fashion-mnist-{split}" if split != "test" else "fashion-mnist",
        "fashion-mnist",
        root,
        tuple(items),
    )


def read_idx(path: Path) -> npt.NDArray[np.uint8]:
    """An IDX file (the MNIST format; gzip or plain) as a uint8 array."""
    if not path.is_file():
        hint = (
            " (install Debian's dataset-fashion-mnist, or pass the folder holding the files)"
            if "t10k" in path.name or "train" in path.name
            else ""
        )
        raise InvalidInputError(f"{path}: IDX file not found{hint}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08:
        raise InvalidInputError(f"{path}: not a uint8 IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise InvalidInputError(f"{path}: IDX header says {shape}, data has {body.size} values")
    return body.reshape(shape)


def detect(
    path: Path | str,
    work_dir: Path,
    *,
    kind: str = "auto",
    distractors: Path | str | None = None,
) -> Dataset:
    """The dataset at ``path``: ``fashion-mnist`` (the built-in name or a folder of IDX files),
    a UKBench layout, a labelled folder, or (``kind='copies'``) a folder of originals, with
    ``distractors`` hidden among them."""
    text = str(path)
    if distractors is not None and kind != "copies":
        raise InvalidInputError("distractors go with a copy-detection set: add --kind copies")
    if kind == "fashion-mnist" or (kind == "auto" and text == "fashion-mnist"):
        source = FASHION_MNIST_DIR if text == "fashion-mnist" else Path(text)
        return fashion_mnist(work_dir, source=source)
    folder = check_folder(path)
    if kind == "auto":
        if (folder / "t10k-images-idx3-ubyte.gz").exists():
            return fashion_mnist(work_dir, source=folder)
        names = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        kind = "ukbench" if names and all(_UKBENCH.search(n) for n in names) else "labelled"
    loaders = {
        "labelled": lambda: labelled_folder(folder),
        "ukbench": lambda: ukbench(folder),
        "copies": lambda: copy_detection(
            folder, work_dir / "copy-detection", distractors=distractors
        ),
    }
    if kind not in loaders:
        raise InvalidInputError(
            f"unknown dataset kind {kind!r}; use auto, labelled, ukbench, copies or fashion-mnist"
        )
    return loaders[kind]()


def _require(items: list[EvalItem], base: Path, what: str) -> None:
    if not items:
        raise InvalidInputError(f"{base}: {what}; see `lookalike evaluate --help` for layouts")


__all__ = [
    "EDITS",
    "Dataset",
    "EvalItem",
    "copy_detection",
    "detect",
    "fashion_mnist",
    "labelled_folder",
    "read_idx",
    "ukbench",
]
