"""How a pretrained network's features become an image descriptor: what the network sees and
how its feature map is pooled. Recorded in the embedder spec, so an index and its queries
always agree, and shown by ``lookalike info``.

- ``classic``: the centre square at the network's own size (224 px for Lite0), average
  pooled: what every tutorial does, and what indexes made before recipes existed record
  (with empty params, so they open and answer exactly as before).
- whole image: the network sees the whole picture, aspect kept (no crop cutting off the sides
  of a landscape photo), shorter side ``size``, longer side capped at ``max_size``; the
  feature map is pooled by generalised mean (GeM): ``(mean x^p)^(1/p)``, which weighs the
  strongest responses more than an average does (p = 1 is the average, p -> inf the max).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Params, l2_normalise
from lookalike.errors import InvalidInputError
from lookalike.input_spec import InputSpec

INPUTS = ("crop", "whole")
POOLINGS = ("avg", "gem")
#: Activations below this are clamped before the GeM power (the map is ReLU6 output, >= 0).
_GEM_EPS = 1e-6


@dataclass(frozen=True)
class Recipe:
    """A descriptor recipe. ``size`` 0 means the network's own input size."""

    input: str = "crop"
    size: int = 0
    max_size: int = 0
    pooling: str = "avg"
    gem_p: float = 3.0

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise InvalidInputError(f"recipe input must be one of {INPUTS}, got {self.input!r}")
        if self.pooling not in POOLINGS:
            raise InvalidInputError(
                f"recipe pooling must be one of {POOLINGS}, got {self.pooling!r}"
            )
        if self.size and not 64 <= self.size <= 1024:
            raise InvalidInputError(f"recipe size must be 64..1024 pixels, got {self.size}")
        if self.max_size and self.max_size < max(self.size, 64):
            raise InvalidInputError(
                f"recipe max_size ({self.max_size}) must be at least its size ({self.size})"
            )
        if not 1.0 <= self.gem_p <= 10.0:
            raise InvalidInputError(f"recipe gem_p must be 1..10, got {self.gem_p}")

    @classmethod
    def classic(cls) -> Recipe:
        return cls()

    @property
    def is_classic(self) -> bool:
        return self == Recipe.classic()

    def input_spec(self, network_size: int) -> InputSpec:
        """The input contract for a network whose own input size is ``network_size``."""
        size = self.size or network_size
        if self.input == "crop":
            return InputSpec(size=size)
        return InputSpec(size=size, resize="whole", max_size=self.max_size, multiple=32)

    def pool(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, c, h, w) feature maps -> (n, c) L2-normalised descriptors."""
        flat = np.asarray(features, dtype=np.float32).reshape(
            features.shape[0], features.shape[1], -1
        )
        if self.pooling == "avg":
            return l2_normalise(flat.mean(axis=2))
        powered = np.power(np.maximum(flat, _GEM_EPS), self.gem_p)
        pooled = np.power(powered.mean(axis=2), 1.0 / self.gem_p).astype(np.float32)
        return l2_normalise(pooled)

    def decompose(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, c, h, w) feature maps -> (n, h, w, c) location descriptors whose mean over the
        h x w locations is exactly :meth:`pool`'s descriptor: each location's share of it.

        Average pooling: each location's features over the pooled vector's norm. GeM: each
        location gets, in every channel, its share of that channel's pooled power
        (``x^p / sum x^p``) of the descriptor's value there. Explanations (lookalike.explain)
        score a location by its dot product with the other image's descriptor: the location's
        part of the two images' cosine similarity.
        """
        n, c, h, w = features.shape
        flat = np.asarray(features, dtype=np.float32).reshape(n, c, h * w)
        if self.pooling == "avg":
            norms = np.linalg.norm(flat.mean(axis=2), axis=1).reshape(n, 1, 1)
            parts = flat / np.maximum(norms, 1e-12)
        else:
            powered = np.power(np.maximum(flat, _GEM_EPS), self.gem_p)
            share = powered / powered.sum(axis=2, keepdims=True)
            parts = share * self.pool(features)[:, :, None] * float(h * w)
        return np.ascontiguousarray(parts.transpose(0, 2, 1).reshape(n, h, w, c), np.float32)

    def to_params(self) -> Params:
        """The spec params: none for the classic recipe (as indexes before recipes record)."""
        if self.is_classic:
            return {}
        params: Params = {"input": self.input, "size": self.size, "pooling": self.pooling}
        if self.max_size:
            params["max_size"] = self.max_size
        if self.pooling == "gem":
            params["gem_p"] = self.gem_p
        return params

    @classmethod
    def from_params(cls, params: Params) -> Recipe:
        known = {"input", "size", "max_size", "pooling", "gem_p"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown recipe field(s) {unknown} in the embedder spec; known: {sorted(known)}"
            )
        try:
            return cls(
                input=str(params.get("input", "crop")),
                size=int(_number(params.get("size", 0))),
                max_size=int(_number(params.get("max_size", 0))),
                pooling=str(params.get("pooling", "avg")),
                gem_p=float(_number(params.get("gem_p", 3.0))),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"bad recipe in the embedder spec {params}: {exc}") from exc

    def describe(self) -> str:
        """One line for ``lookalike info``."""
        if self.input == "crop":
            where = (
                f"centre crop, {self.size} px" if self.size else "centre crop at the network's size"
            )
        else:
            cap = f", longer side at most {self.max_size} px" if self.max_size else ""
            where = f"whole image, aspect kept, shorter side {self.size} px{cap}"
        pooling = f"GeM pooling (p={self.gem_p:g})" if self.pooling == "gem" else "average pooling"
        return f"{where}; {pooling}"


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


__all__ = ["INPUTS", "POOLINGS", "Recipe"]
