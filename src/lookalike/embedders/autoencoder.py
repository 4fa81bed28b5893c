"""The encoder of a trained convolutional autoencoder, served by ONNX Runtime (no PyTorch at
search time). Training lives in :mod:`lookalike.training.autoencoder`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.embedders.model_folder import CONFIG_FILE, config_int, read_config
from lookalike.embedders.onnx import OnnxModel
from lookalike.errors import ModelError
from lookalike.input_spec import InputSpec

ENCODER_FILE = "encoder.onnx"


class AutoencoderEncoder:
    """Latent vectors of ``image_size`` px images (the whole image, no crop)."""

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        config = read_config(folder, kind="autoencoder")
        size = config_int(config, "image_size", folder)
        self._dim = config_int(config, "latent_dim", folder)
        path = folder / ENCODER_FILE
        if not path.is_file():
            raise ModelError(f"{path}: encoder file not found; train the model again")
        self._model = OnnxModel(path, threads=threads)
        takes = list(self._model.session.get_inputs()[0].shape[1:])
        gives = list(self._model.session.get_outputs()[0].shape[1:])
        if takes != [size, size, 3] or gives != [self._dim]:
            raise ModelError(
                f"{path}: encoder takes {takes} images and gives {gives} vectors, but "
                f"{CONFIG_FILE} says image_size {size} and latent_dim {self._dim}; keep the "
                "config that came with the weights, or train again"
            )
        self._input = InputSpec(size=size, crop_fraction=1.0, mean=(0, 0, 0), std=(1, 1, 1))

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return self._model.run("latent", {"image": batch}).astype(np.float32, copy=False)
