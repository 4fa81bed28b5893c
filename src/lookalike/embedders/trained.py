"""Models trained by ``lookalike train`` as embedders: a model folder is read, its kind picks
the code that computes features, and the folder's digest identifies it in index manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import Embedder, EmbedderSpec, InputSpec, check_batch, l2_normalise
from lookalike.embedders.model_folder import folder_digest, read_config
from lookalike.errors import ModelError


class FeatureModel(Protocol):
    """What each kind of trained model provides."""

    @property
    def input_spec(self) -> InputSpec: ...

    @property
    def dim(self) -> int: ...

    def features(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...


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
    kind = str(read_config(folder)["kind"])
    model: FeatureModel
    if kind == "autoencoder":
        from lookalike.embedders.autoencoder import AutoencoderEncoder

        model = AutoencoderEncoder(folder, threads=threads)
    elif kind == "triplet":
        from lookalike.embedders.metric import ProjectionHead

        model = ProjectionHead(folder, threads=threads)
    else:
        from lookalike.embedders.bovw import BagOfVisualWords

        model = BagOfVisualWords.load(folder)
    return TrainedEmbedder(folder, kind, model)
