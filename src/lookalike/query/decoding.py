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
from lookalike.imaging import DEFAULT_MAX_PIXELS, open_image, prepare
from lookalike.query.geometry import grey_decode_side, grey_image
from lookalike.region import Box, Region

#: A query image: a file path, the bytes of an image file, a decoded PIL image, or a region
#: of any of those (:class:`lookalike.region.Region`).
Query = str | Path | bytes | Image.Image | Region


@dataclass(frozen=True)
class DecodedQueries:
    """A batch of queries ready to embed: their names (as results report them) and their
    prepared pixels, one uint8 (h, w, 3) array each (shapes differ when the embedder keeps
    each image's aspect ratio); ``grey``: each query in greyscale for geometric verification
    (query/geometry.py), when it was asked for; ``boxes``: each query's region (None: the
    whole image; empty: no query had one)."""

    names: tuple[str, ...]
    pixels: tuple[npt.NDArray[np.uint8], ...]
    grey: tuple[npt.NDArray[np.uint8], ...] | None = None
    boxes: tuple[Box | None, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def box(self, position: int) -> Box | None:
        """The region the query at ``position`` was cut to, or None for a whole image."""
        return self.boxes[position] if self.boxes else None

    @staticmethod
    def join(parts: Sequence[DecodedQueries]) -> DecodedQueries:
        """One batch of the queries of ``parts``, in order (greyscale images kept only when
        every part has them)."""
        greys = [part.grey for part in parts]
        grey = tuple(g for part in greys if part is not None for g in part)
        boxes = tuple(part.box(i) for part in parts for i in range(len(part)))
        return DecodedQueries(
            tuple(name for part in parts for name in part.names),
            tuple(pixels for part in parts for pixels in part.pixels),
            grey if parts and all(g is not None for g in greys) else None,
            boxes if any(boxes) else (),
        )


def query_name(query: Query) -> str:
    """How results and errors name a query: its path, or what kind of image it was given as
    (a region is named as its image: results report its box apart)."""
    if isinstance(query, Region):
        return query_name(query.image)
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
    naming that query (by ``names`` where given: an upload's file name, say), a region that
    does not fit its image an ``InvalidInputError``. ``grey_side``: also keep each query in
    greyscale, its long side that many pixels, for verification (a region's: the region)."""
    if names is not None and len(names) != len(queries):
        raise InvalidInputError(f"{len(names)} names given for {len(queries)} queries")
    labels = list(names) if names is not None else [query_name(q) for q in queries]
    pixels = []
    greys = []
    for position, (query, name) in enumerate(zip(queries, labels, strict=True)):
        try:
            pixels.append(prepare(open_query(query, spec.decode_side, max_pixels, name), spec))
            if grey_side is not None:
                image = open_query(query, grey_decode_side(grey_side), max_pixels, name)
                greys.append(grey_image(image, grey_side))
        except ImageError as exc:
            if isinstance(query, (str, Path)) and names is None:
                raise  # it already names the file
            many = len(labels) > 1
            label = f"query {position + 1} of {len(labels)} ({name})" if many else name
            raise ImageError(label, exc.reason) from exc
    kept = tuple(greys) if grey_side is not None else None
    boxes = tuple(q.box if isinstance(q, Region) else None for q in queries)
    return DecodedQueries(tuple(labels), tuple(pixels), kept, boxes if any(boxes) else ())


def open_query(query: Query, min_side: int, max_pixels: int, name: str) -> Image.Image:
    """A query as an upright RGB image, JPEGs decoded no larger than ``min_side`` needs (for a
    region: its shorter side; only the region is returned, its box checked first)."""
    box = query.box if isinstance(query, Region) else None
    source = query.image if isinstance(query, Region) else query
    if isinstance(source, Image.Image):
        image = source.convert("RGB")
        return box.crop(image, name=name) if box is not None else image
    return open_image(source, min_side=min_side, max_pixels=max_pixels, box=box, name=name)


__all__ = ["DecodedQueries", "Query", "decode_queries", "open_query", "query_name"]
