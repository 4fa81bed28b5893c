"""The kinds of model ``lookalike train`` makes, in one table: reading a model folder checks its
kind against it, and loading one dispatches through it. Each loader imports its code lazily."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lookalike.input_spec import InputSpec


class FeatureModel(Protocol):
    """What each kind of trained model provides."""

    @property
    def input_spec(self) -> InputSpec: ...

    @property
    def dim(self) -> int: ...

    def features(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class TrainedKind:
    """A kind of trained model: its name in ``lookalike-model.json``, a one-line description,
    and how to load a folder of that kind (folder, threads) into a feature model."""

    name: str
    description: str
    load: Callable[[Path, int | None], FeatureModel]


def _autoencoder(folder: Path, threads: int | None) -> FeatureModel:
    from lookalike.embedders.autoencoder import AutoencoderEncoder

    return AutoencoderEncoder(folder, threads=threads)


def _triplet(folder: Path, threads: int | None) -> FeatureModel:
    from lookalike.embedders.metric import ProjectionHead

    return ProjectionHead(folder, threads=threads)


def _bovw(folder: Path, threads: int | None) -> FeatureModel:
    from lookalike.embedders.bovw import BagOfVisualWords

    return BagOfVisualWords.load(folder)


TRAINED_KINDS: dict[str, TrainedKind] = {
    kind.name: kind
    for kind in (
        TrainedKind("autoencoder", "convolutional autoencoder trained on the images", _autoencoder),
        TrainedKind("triplet", "projection head on pretrained features, triplet loss", _triplet),
        TrainedKind("bovw", "bag of visual words: ORB descriptors and a k-means vocabulary", _bovw),
    )
}
