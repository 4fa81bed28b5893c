"""Embedding a batch of decoded queries with the index's own embedder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder
from lookalike.embedders.batching import DEFAULT_BATCH, embed_images

#: Queries per network call: big enough to batch well, small enough to bound memory.
EMBED_BATCH = DEFAULT_BATCH


def embed_pixels(
    embedder: Embedder,
    pixels: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
    *,
    batch_size: int = EMBED_BATCH,
) -> npt.NDArray[np.float32]:
    """Prepared query images (one or several shapes) -> (n, dim) float32, in order."""
    if not len(pixels):
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return embed_images(embedder, pixels, batch_size=batch_size)


__all__ = ["EMBED_BATCH", "embed_pixels"]
