"""A projection head trained with triplet loss on top of frozen pretrained features. At search
time it is a few NumPy matrix products after the pretrained network; training lives in
:mod:`lookalike.training.triplet`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.embedders.model_folder import CONFIG_FILE, config_int, load_arrays, read_config
from lookalike.embedders.pretrained import FEATURE_DIM, VARIANTS, EfficientNetLite
from lookalike.embedders.recipe import Recipe
from lookalike.errors import ModelError
from lookalike.input_spec import InputSpec


def head_shapes(base_dim: int, hidden: Sequence[int], dim: int) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a head: linear layers ``layers.i.weight`` (out, in) and
    ``layers.i.bias``, with ReLU between them."""
    sizes = [base_dim, *hidden, dim]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        shapes[f"layers.{i}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{i}.bias"] = (fan_out,)
    return shapes


def apply_head(
    features: npt.NDArray[np.float32], weights: Mapping[str, npt.NDArray[Any]]
) -> npt.NDArray[np.float32]:
    """The head's output (not normalised) for base features (n, base_dim)."""
    x = features
    layers = len(weights) // 2
    for i in range(layers):
        x = x @ weights[f"layers.{i}.weight"].T + weights[f"layers.{i}.bias"]
        if i < layers - 1:
            x = np.maximum(x, 0.0)
    return np.asarray(x, dtype=np.float32)


class ProjectionHead:
    """Pretrained features of the recorded base network, projected by the trained head."""

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        config = read_config(folder, kind="triplet")
        source = folder / CONFIG_FILE
        base = config.get("base")
        if base not in VARIANTS:
            raise ModelError(
                f"{source}: field 'base' must be one of {sorted(VARIANTS)}, got {base!r}"
            )
        hidden = config.get("hidden", [])
        if not isinstance(hidden, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ModelError(
                f"{source}: field 'hidden' must be a list of layer sizes, got {hidden!r}"
            )
        self._dim = config_int(config, "dim", folder)
        recipe = config.get("base_recipe", {})  # heads made before recipes: the classic one
        if not isinstance(recipe, dict):
            raise ModelError(f"{source}: field 'base_recipe' must be an object, got {recipe!r}")
        self._base = EfficientNetLite(str(base), recipe=Recipe.from_params(recipe), threads=threads)
        recorded = config.get("base_weights_sha256")
        if recorded != self._base.weights_digest:
            raise ModelError(
                f"{source}: the head was trained on {base} weights with sha256 "
                f"{str(recorded)[:12]}…, but the installed ones have "
                f"{self._base.weights_digest[:12]}…; train the head again"
            )
        self._weights = load_arrays(folder, head_shapes(FEATURE_DIM, hidden, self._dim))

    @property
    def input_spec(self) -> InputSpec:
        return self._base.input_spec

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return apply_head(self._base.embed(batch), self._weights)

    def feature_maps(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Location descriptors in the head's space (n, rows, cols, dim): each location of
        the base network's map (``EfficientNetLite.feature_maps``, whose mean is the base
        descriptor) through the head, over the norm of the image's head output. Their mean is
        the image's descriptor exactly for a head without hidden layers (an affine map), and
        close to it with hidden ReLU layers."""
        base = self._base.feature_maps(batch)
        n, rows, cols, channels = base.shape
        locations = base.reshape(n, rows * cols, channels)
        whole = apply_head(locations.mean(axis=1), self._weights)
        norms = np.maximum(np.linalg.norm(whole, axis=1), 1e-12).reshape(n, 1, 1)
        parts = apply_head(locations.reshape(-1, channels), self._weights)
        parts = parts.reshape(n, rows * cols, self._dim) / norms
        return np.ascontiguousarray(parts.reshape(n, rows, cols, self._dim), np.float32)
