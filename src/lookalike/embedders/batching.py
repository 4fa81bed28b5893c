"""Batching prepared images for a network: images of one shape share a network call.

With ``InputSpec(resize="whole")`` images keep their aspect ratio, so a list of prepared
images holds a few shapes (4:3, 3:2, 16:9, square, their portrait twins). Each shape goes
through the network in its own batches and the vectors come back in the input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder

#: Images per network call: big enough to batch well, small enough to bound memory.
DEFAULT_BATCH = 32


def embed_images(
    embedder: Embedder,
    images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
    *,
    batch_size: int = DEFAULT_BATCH,
) -> npt.NDArray[np.float32]:
    """(h, w, 3) uint8 images, of one or several shapes -> (n, dim) float32, in input order."""
    out = np.zeros((len(images), embedder.dim), dtype=np.float32)
    if isinstance(images, np.ndarray) and images.ndim == 4:  # one shape: slices, no copies
        for start in range(0, len(images), batch_size):
            out[start : start + batch_size] = embedder.embed(images[start : start + batch_size])
        return out
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.shape, []).append(i)
    for rows in groups.values():
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            batch = np.stack([images[i] for i in part])
            out[part] = embedder.embed(batch)
    return out


__all__ = ["DEFAULT_BATCH", "embed_images"]
