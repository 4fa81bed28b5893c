"""Decoding queries into the pixels the index's embedder takes. Kept apart from the other
stages so that a server can decode uploads outside the lock that serialises searches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.embedders.base import InputSpec
from lookalike.errors import ImageError, InvalidInputError
from lookalike.imaging import DEFAULT_MAX_PIXELS, load_prepared, prepare
from lookalike.query.geometry import load_grey

#: A query image: a file path, the bytes of an image file, or a decoded PIL image.
Query = str | Path | bytes | Image.Image


@dataclass(frozen=True)
class DecodedQueries:
    """A batch of queries ready to embed: their names (as results report them) and their
    prepared pixels, one uint8 (h, w, 3) array each (shapes differ when the embedder keeps
    each image's aspect ratio); ``grey``: each query in greyscale for geometric verification
    (query/geometry.py), when it was asked for."""

    names: tuple[str, ...]
    pixels: tuple[npt.NDArray[np.uint8], ...]
    grey: tuple[npt.NDArray[np.uint8], ...] | None = None

    def __len__(self) -> int:
        return len(self.names)


def query_name(query: Query) -> str:
    """How results and errors name a query: its path, or what kind of image it was given as."""
    if isinstance(query, (str, Path)):
        return str(query)
    return "<image bytes>" if isinstance(query, bytes) else "<PIL image>"


def decode_queries(
    queries: Sequence[Query],
    spec: InputSpec,
    *,
    names: Sequence[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    grey_side: int | None = None,
) -> DecodedQueries:
    """Decode and prepare each query; an image that cannot be decoded raises an ``ImageError``
    naming that query (by ``names`` where given: an upload's file name, say). ``grey_side``:
    also keep each query in greyscale, its long side that many pixels, for verification."""
    if names is not None and len(names) != len(queries):
        raise InvalidInputError(f"{len(names)} names given for {len(queries)} queries")
    labels = list(names) if names is not None else [query_name(q) for q in queries]
    pixels = []
    greys = []
    for position, (query, name) in enumerate(zip(queries, labels, strict=True)):
        try:
            pixels.append(_decode(query, spec, max_pixels))
            if grey_side is not None:
                greys.append(load_grey(query, grey_side, max_pixels=max_pixels))
        except ImageError as exc:
            if isinstance(query, (str, Path)) and names is None:
                raise  # it already names the file
            many = len(labels) > 1
            label = f"query {position + 1} of {len(labels)} ({name})" if many else name
            raise ImageError(label, exc.reason) from exc
    kept = tuple(greys) if grey_side is not None else None
    return DecodedQueries(tuple(labels), tuple(pixels), kept)


def _decode(query: Query, spec: InputSpec, max_pixels: int) -> npt.NDArray[np.uint8]:
    if isinstance(query, Image.Image):
        return prepare(query.convert("RGB"), spec)
    return load_prepared(query, spec, max_pixels=max_pixels)


__all__ = ["DecodedQueries", "Query", "decode_queries", "query_name"]
