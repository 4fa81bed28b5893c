"""Classical baselines that give learned embeddings something to beat: raw pixels and a colour
histogram. No weights: their identity is their parameters."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import EmbedderSpec, check_batch, l2_normalise
from lookalike.errors import InvalidInputError
from lookalike.input_spec import InputSpec

_RECIPE = "classical-1"


def _digest(spec: EmbedderSpec) -> str:
    return hashlib.sha256(f"{_RECIPE}:{spec.key()}".encode()).hexdigest()


class RawPixels:
    """The whole image shrunk to ``size`` x ``size`` RGB, flattened, L2-normalised."""

    def __init__(self, size: int = 32) -> None:
        self._input = InputSpec(size=size, crop_fraction=1.0)
        self._spec = EmbedderSpec("pixels", {"size": size})

    @property
    def spec(self) -> EmbedderSpec:
        return self._spec

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return self._input.size * self._input.size * 3

    @property
    def weights_digest(self) -> str:
        return _digest(self._spec)

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self._input)
        flat = batch.reshape(len(batch), -1).astype(np.float32) / 255.0
        return l2_normalise(flat)


class ColourHistogram:
    """A joint RGB histogram with ``bins`` levels per channel (bins**3 dimensions), square-rooted
    so that cosine similarity is the Bhattacharyya coefficient of the two colour distributions."""

    def __init__(self, bins: int = 8, size: int = 64) -> None:
        if not 2 <= bins <= 32:
            raise InvalidInputError(f"colour histogram bins must be 2..32, got {bins}")
        self._bins = bins
        self._input = InputSpec(size=size, crop_fraction=1.0)
        self._spec = EmbedderSpec("colour-histogram", {"bins": bins, "size": size})

    @property
    def spec(self) -> EmbedderSpec:
        return self._spec

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return int(self._bins**3)

    @property
    def weights_digest(self) -> str:
        return _digest(self._spec)

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self._input)
        n = len(batch)
        levels = (batch.astype(np.int64) * self._bins) // 256
        cells = (levels[..., 0] * self._bins + levels[..., 1]) * self._bins + levels[..., 2]
        cells = cells.reshape(n, -1) + (np.arange(n) * self.dim)[:, None]
        counts = np.bincount(cells.ravel(), minlength=n * self.dim).reshape(n, self.dim)
        return l2_normalise(np.sqrt(counts.astype(np.float32)))
