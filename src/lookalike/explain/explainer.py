"""`Explainer`: heatmaps of a query and a result (an upload, a file or an indexed image).

Each side is decoded (views.py), run through the index's embedder for its feature map
(``SpatialEmbedder``) and kept in a small cache, keyed by what was decoded (an upload's hash,
or a file's path, size and modification time) and the region: a page asking for the twelve
results of one query runs the network on the query once. The two maps become heatmaps
(heatmaps.py) and, on request, overlays (overlays.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.collection import Collection
from lookalike.embedders.base import Embedder
from lookalike.embedders.spatial import SpatialEmbedder, is_spatial, spatial_embedder
from lookalike.errors import InvalidInputError
from lookalike.explain.explanation import Explanation
from lookalike.explain.heatmaps import agreement, place
from lookalike.explain.overlays import overlay_png
from lookalike.explain.views import ImageView, view_image
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.query.decoding import Query
from lookalike.region import Box, ImageSource, Region

#: Images whose feature maps are kept (a Lite0 map of a 256 x 352 input is ~0.4 MB, its
#: preview ~0.6 MB): a page's query and its results.
CACHE_SIZE = 24

Key = Hashable | None


@dataclass(frozen=True)
class Side:
    """One image of an explanation, through the network: its view and location descriptors."""

    view: ImageView
    maps: npt.NDArray[np.float32]


def upload_key(data: bytes, box: Box | None) -> Key:
    """The cache key of uploaded bytes (and region)."""
    return ("bytes", hashlib.blake2b(data, digest_size=16).hexdigest(), box)


def _unwrap(query: Query, box: Box | None) -> tuple[ImageSource, Box | None]:
    """A query's image and box (a ``Region`` carries its own: a second one is refused)."""
    if not isinstance(query, Region):
        return query, box
    if box is not None and box != query.box:
        raise InvalidInputError(
            f"the query is already the region {query.box.text()}; do not pass box={box.text()} too"
        )
    return query.image, query.box


def query_key(query: ImageSource, box: Box | None) -> Key:
    """The cache key of a query: its bytes' hash, or its file's path, size and modification
    time; None (not cached) for a PIL image."""
    if isinstance(query, bytes):
        return upload_key(query, box)
    if isinstance(query, Image.Image):
        return None
    path = Path(query).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:
        return None  # decoding says what is wrong with it
    return ("file", str(path), stat.st_size, stat.st_mtime_ns, box)


class Explainer:
    """Explains matches of one index with its own embedder; thread-safe."""

    def __init__(
        self,
        model: Callable[[], Embedder],
        collection: Collection,
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._model = model
        self._collection = collection
        self._cache: OrderedDict[Hashable, Side] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def explainable(self) -> bool:
        """Whether the index's embedder has a feature map to explain with."""
        return is_spatial(self._model())

    def spatial(self) -> SpatialEmbedder:
        """The embedder's feature-map side; ``NotExplainableError`` naming it if it has none."""
        return spatial_embedder(self._model())

    def decode(
        self,
        query: Query,
        *,
        box: Box | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        name: str | None = None,
    ) -> ImageView:
        """Decode a query for :meth:`explain` (servers do it in their decode slots)."""
        source, region = _unwrap(query, box)
        return view_image(
            source, self.spatial().input_spec, box=region, max_pixels=max_pixels, name=name
        )

    def cached(self, key: Key) -> bool:
        with self._lock:
            return key is not None and key in self._cache

    def explain(
        self,
        query: Query | ImageView,
        result_id: int,
        *,
        box: Box | None = None,
        overlays: bool = False,
        key: Key = None,
    ) -> Explanation:
        """Heatmaps of ``query`` (with ``box``: that region of it; a ``Region`` carries its
        own) and the indexed image ``result_id``. A decoded ``ImageView`` is taken as is (its
        own box); ``key``: its cache key (default: worked out from ``query``)."""
        spatial = self.spatial()
        if isinstance(query, ImageView):
            view = query
            side = self._side(key, spatial, lambda: view)
        else:
            source, region = _unwrap(query, box)
            wanted = key if key is not None else query_key(source, region)
            side = self._side(wanted, spatial, lambda: self.decode(source, box=region))
        return self._explain(side, self._indexed(result_id, spatial, None), result_id, overlays)

    def explain_ids(
        self, query_id: int, result_id: int, *, box: Box | None = None, overlays: bool = False
    ) -> Explanation:
        """Heatmaps of two indexed images; ``box`` is a region of the first."""
        spatial = self.spatial()
        query = self._indexed(query_id, spatial, box)
        return self._explain(query, self._indexed(result_id, spatial, None), result_id, overlays)

    def _indexed(self, image_id: int, spatial: SpatialEmbedder, box: Box | None) -> Side:
        record, _ = self._collection.record(image_id)
        name = f"image {image_id} ({record.path})"
        key = query_key(record.path, box)
        return self._side(
            key, spatial, lambda: view_image(record.path, spatial.input_spec, box=box, name=name)
        )

    def _side(self, key: Key, spatial: SpatialEmbedder, decode: Callable[[], ImageView]) -> Side:
        if key is not None:
            with self._lock:
                found = self._cache.get(key)
                if found is not None:
                    self._cache.move_to_end(key)
                    return found
        view = decode()
        side = Side(view, spatial.feature_maps(view.pixels[None])[0])
        if key is not None:
            with self._lock:
                self._cache[key] = side
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return side

    def _explain(self, query: Side, result: Side, result_id: int, overlays: bool) -> Explanation:
        agreed = agreement(query.maps, result.maps)
        query_heat = place(agreed.query, *query.view.size, query.view.seen)
        result_heat = place(agreed.result, *result.view.size, result.view.seen)
        return Explanation(
            query_heatmap=query_heat,
            result_heatmap=result_heat,
            query_size=query.view.size,
            result_size=result.view.size,
            score=agreed.score,
            result_id=result_id,
            box=query.view.box,
            query_overlay=overlay_png(query.view.preview, query_heat) if overlays else None,
            result_overlay=overlay_png(result.view.preview, result_heat) if overlays else None,
        )


__all__ = ["CACHE_SIZE", "Explainer", "Side", "query_key", "upload_key"]
