"""Embedding a batch of decoded queries with the index's own embedder."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder

#: Queries per network call: big enough to batch well, small enough to bound memory.
EMBED_BATCH = 32


def embed_pixels(
    embedder: Embedder, pixels: npt.NDArray[np.uint8], *, batch_size: int = EMBED_BATCH
) -> npt.NDArray[np.float32]:
    """(n, size, size, 3) uint8 -> (n, dim) float32, through the network in batches."""
    if not len(pixels):
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts = [embedder.embed(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


__all__ = ["EMBED_BATCH", "embed_pixels"]
