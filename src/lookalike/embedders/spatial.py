"""The optional capability explanations need: a feature map, not only a vector.

An embedder (or a trained model's feature model) that keeps where in the image its features
come from offers ``feature_maps``: location descriptors whose mean over the locations is the
image's descriptor (see ``Recipe.decompose``), so a location's dot product with another image's
descriptor is its part of the two images' similarity. Embedders that pool before anything
spatial is left (pixels, histograms, bag of visual words, user ONNX models, the autoencoder)
do not offer it, and asking them for an explanation is refused by name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder
from lookalike.errors import InvalidInputError
from lookalike.input_spec import InputSpec

#: The embedders that explain, as messages list them.
EXPLAINABLE = (
    "efficientnet-lite0/1/2 at every --quality (int8 too)",
    "trained triplet heads (lookalike train triplet)",
)


@runtime_checkable
class SpatialEmbedder(Protocol):
    """Prepared images -> location descriptors (n, rows, cols, c) float32, the rows x cols
    grid covering what the network saw (the whole prepared input)."""

    @property
    def input_spec(self) -> InputSpec: ...

    def feature_maps(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...


class NotExplainableError(InvalidInputError):
    """The index's embedder has no feature map, so matches cannot be explained."""


def spatial_embedder(embedder: Embedder) -> SpatialEmbedder:
    """The feature-map side of ``embedder``; :class:`NotExplainableError` if it has none."""
    if isinstance(embedder, SpatialEmbedder):
        return embedder
    from lookalike.embedders.trained import TrainedEmbedder

    if isinstance(embedder, TrainedEmbedder) and isinstance(embedder.model, SpatialEmbedder):
        return embedder.model
    name = embedder.spec.name
    if isinstance(embedder, TrainedEmbedder):
        name = f"trained {embedder.kind} model"
    raise NotExplainableError(
        f"embedder {name}: it keeps no feature map (where in the image a feature comes from), "
        f"so its matches cannot be explained; the embedders that explain are: "
        f"{'; '.join(EXPLAINABLE)} (index the images again with one of them)"
    )


def is_spatial(embedder: Embedder) -> bool:
    """Whether ``embedder`` can explain its matches."""
    try:
        spatial_embedder(embedder)
    except NotExplainableError:
        return False
    return True


__all__ = [
    "EXPLAINABLE",
    "NotExplainableError",
    "SpatialEmbedder",
    "is_spatial",
    "spatial_embedder",
]
