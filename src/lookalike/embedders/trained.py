"""Models trained by ``lookalike train`` as embedders: a model folder is read, its kind picks
the code that computes features (through the table in :mod:`lookalike.embedders.trained_kinds`),
and the folder's digest identifies it in index manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder, EmbedderSpec, check_batch, l2_normalise
from lookalike.embedders.model_folder import folder_digest, read_config
from lookalike.embedders.trained_kinds import TRAINED_KINDS, FeatureModel
from lookalike.errors import ModelError
from lookalike.input_spec import InputSpec


class TrainedEmbedder:
    """A trained model folder as an :class:`~lookalike.embedders.base.Embedder`."""

    def __init__(self, folder: Path, kind: str, model: FeatureModel) -> None:
        self.kind = kind
        self._model = model
        self._spec = EmbedderSpec("trained", {"path": str(folder)})
        self._digest = folder_digest(folder)

    @property
    def spec(self) -> EmbedderSpec:
        return self._spec

    @property
    def model(self) -> FeatureModel:
        """The model that computes the features (explanations look for a feature map on it)."""
        return self._model

    @property
    def input_spec(self) -> InputSpec:
        return self._model.input_spec

    @property
    def dim(self) -> int:
        return self._model.dim

    @property
    def weights_digest(self) -> str:
        return self._digest

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self.input_spec)
        return l2_normalise(self._model.features(batch))


def load_trained_embedder(path: Path, *, threads: int | None = None) -> Embedder:
    """The embedder of the model folder at ``path`` (autoencoder, triplet head or BoVW)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(
            f"{folder}: model folder not found; it is made by `lookalike train ... --out FOLDER`"
        )
    kind = str(read_config(folder)["kind"])  # checked against TRAINED_KINDS
    return TrainedEmbedder(folder, kind, TRAINED_KINDS[kind].load(folder, threads))
