"""Training data: the images of a folder decoded into memory, and pretrained base features of a
labelled folder computed once and cached on disk, keyed by the base weights and the files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.decoding import WorkerPool
from lookalike.embedders.base import Embedder, InputSpec
from lookalike.embedders.batching import embed_images
from lookalike.errors import InvalidInputError
from lookalike.sources import ImageFile, check_folder, scan_folder
from lookalike.training.progress import TrainingCallback, TrainingProgress, silent

_FEATURE_BATCH = 64
_CACHE_RECIPE = 2


@dataclass(frozen=True)
class ImageFolder:
    """The image files under a folder and their labels (first subfolder; None at the top)."""

    root: Path
    files: tuple[ImageFile, ...]

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def labels(self) -> list[str]:
        """Class names of a labelled folder; images outside a class subfolder are refused."""
        outside = [f.path for f in self.files if f.label is None]
        if outside:
            raise InvalidInputError(
                f"{outside[0]}: image outside a class subfolder; a labelled folder holds one "
                "subfolder per class"
            )
        names = [str(f.label) for f in self.files]
        if len(set(names)) < 2:
            raise InvalidInputError(f"{self.root}: a labelled folder needs two or more classes")
        return names


def image_folder(root: Path | str) -> ImageFolder:
    base = check_folder(root)
    files = tuple(scan_folder(base))
    if not files:
        raise InvalidInputError(f"{base}: no images found (JPEG, PNG, WebP, ...) to train on")
    return ImageFolder(base, files)


@dataclass(frozen=True)
class DecodedImages:
    """Prepared pixels (n, size, size, 3) of the images that decoded, and the ones skipped."""

    pixels: npt.NDArray[np.uint8]
    kept: npt.NDArray[np.bool_]
    skipped: tuple[tuple[str, str], ...]


def decode_images(
    paths: list[str],
    spec: InputSpec,
    *,
    workers: int | None = None,
    progress: TrainingCallback = silent,
) -> DecodedImages:
    """Decode and prepare every image in memory (training sets of small images fit)."""
    out = np.zeros((len(paths), spec.size, spec.size, 3), dtype=np.uint8)
    kept = np.zeros(len(paths), dtype=bool)
    skipped = []
    with WorkerPool(workers, chunk_size=64) as pool:
        for i, decoded in enumerate(pool.decode(paths, spec)):
            if decoded.pixels is None:
                skipped.append((paths[i], str(decoded.error)))
            else:
                out[i] = decoded.pixels
                kept[i] = True
            if i % 256 == 255 or i == len(paths) - 1:
                progress(TrainingProgress("decode", i + 1, len(paths)))
    if not kept.any():
        raise InvalidInputError(f"none of the {len(paths)} images could be decoded")
    return DecodedImages(out[kept], kept, tuple(skipped))


def base_features(
    folder: ImageFolder,
    embedder: Embedder,
    *,
    cache: Path | None,
    workers: int | None = None,
    progress: TrainingCallback = silent,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """(features of the images that decoded, mask of those images) from ``embedder``; read from
    ``cache`` (a folder) when the same files were embedded by the same weights before."""
    target = None
    if cache is not None:
        key = hashlib.sha256(
            f"{_CACHE_RECIPE}:{embedder.weights_digest}:{embedder.spec.key()}".encode()
        )
        for f in folder.files:
            key.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode())
        target = cache / f"features-{key.hexdigest()[:32]}.npz"
        if target.is_file():
            with np.load(target, allow_pickle=False) as stored:
                features, kept = stored["features"], stored["kept"]
            progress(TrainingProgress("features", len(kept), len(kept)))
            return features.astype(np.float32), kept.astype(bool)
    paths = folder.paths
    features = np.zeros((len(paths), embedder.dim), dtype=np.float32)
    kept = np.zeros(len(paths), dtype=bool)
    batch: list[npt.NDArray[np.uint8]] = []
    rows: list[int] = []
    with WorkerPool(workers) as pool:
        for i, decoded in enumerate(pool.decode(paths, embedder.input_spec)):
            if decoded.pixels is not None:
                batch.append(decoded.pixels)
                rows.append(i)
            if len(batch) == _FEATURE_BATCH or (i == len(paths) - 1 and batch):
                features[rows] = embed_images(embedder, batch)
                kept[rows] = True
                batch, rows = [], []
                progress(TrainingProgress("features", i + 1, len(paths)))
    found = features[kept]
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        durable.write_with(target, lambda fh: np.savez(fh, features=found, kept=kept))
    return found, kept


@dataclass(frozen=True)
class LabelledFeatures:
    """Base features of a labelled folder: one row per decoded image, its class index, the
    class names (sorted) and the files that could not be decoded."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    classes: tuple[str, ...]
    skipped: tuple[str, ...]


def labelled_features(
    root: Path | str,
    embedder: Embedder,
    *,
    cache: Path | None,
    workers: int | None = None,
    progress: TrainingCallback = silent,
) -> LabelledFeatures:
    """Features of every image of a labelled folder (one subfolder per class)."""
    folder = image_folder(root)
    names = folder.labels()
    features, kept = base_features(
        folder, embedder, cache=cache, workers=workers, progress=progress
    )
    classes = tuple(sorted(set(names)))
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([index[n] for n, k in zip(names, kept, strict=True) if k], dtype=np.int64)
    skipped = tuple(p for p, k in zip(folder.paths, kept, strict=True) if not k)
    return LabelledFeatures(features, labels, classes, skipped)
