"""Any ONNX image model as an embedder: bring your own VGG16, ResNet, CLIP image tower..."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import EmbedderSpec, check_batch, l2_normalise
from lookalike.errors import InvalidInputError, ModelError
from lookalike.input_spec import InputSpec
from lookalike.sources import file_digest


def make_session(path: Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with the thread count set (default: every core)."""
    import onnxruntime as ort  # heavy: imported only when a model is really needed

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No busy-waiting between ops, measured both ways here: spinning threads steal the cores
    # that decoding workers (indexing) and the BLAS search right after a query (serving) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{path}: cannot load ONNX model ({exc})") from exc


class OnnxModel:
    """One ONNX file and its session, returning one named output as a NumPy array."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        self.session = make_session(path, threads=threads)

    def run(self, output: str, feeds: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        (result,) = self.session.run([output], feeds)
        return np.asarray(result)


class OnnxEmbedder:
    """Runs a user-supplied ONNX model on float32 images normalised with ``mean`` and ``std``.

    The model takes one image tensor (NCHW by default, or NHWC); its output may be (n, d)
    features or an (n, c, h, w) feature map, which is average-pooled. Vectors are L2-normalised.

    Example:
        >>> embedder = OnnxEmbedder("resnet50.onnx", input_size=224)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        input_size: int = 224,
        crop_fraction: float = 0.875,
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        output: str | None = None,
        layout: str = "nchw",
        threads: int | None = None,
    ) -> None:
        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            raise InvalidInputError(f"{model_path}: ONNX model file not found")
        if layout not in ("nchw", "nhwc"):
            raise InvalidInputError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
        self._input = InputSpec(size=input_size, crop_fraction=crop_fraction, mean=mean, std=std)
        self._layout = layout
        self._model = OnnxModel(path, threads=threads)
        session = self._model.session
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ModelError(f"{path}: model must take exactly one image input, it takes {names}")
        self._input_name = inputs[0].name
        outputs = [o.name for o in session.get_outputs()]
        if output is not None and output not in outputs:
            raise InvalidInputError(f"{path}: model has no output {output!r}; it has {outputs}")
        self._output = output or outputs[0]
        self._digest = file_digest(path)
        self._spec = EmbedderSpec(
            "onnx",
            {
                "path": str(path),
                "input_size": input_size,
                "crop_fraction": crop_fraction,
                "mean": list(mean),
                "std": list(std),
                "output": self._output,
                "layout": layout,
            },
        )
        probe = np.zeros((1, input_size, input_size, 3), dtype=np.uint8)
        self._dim = int(self.embed(probe).shape[1])
        self._mean = np.asarray(mean, dtype=np.float32)

    @property
    def spec(self) -> EmbedderSpec:
        return self._spec

    @property
    def input_spec(self) -> InputSpec:
        return self._input

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def weights_digest(self) -> str:
        return self._digest

    def embed(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        check_batch(batch, self._input)
        mean = np.asarray(self._input.mean, dtype=np.float32)
        std = np.asarray(self._input.std, dtype=np.float32)
        pixels = (batch.astype(np.float32) * (1.0 / 255.0) - mean) / std
        if self._layout == "nchw":
            pixels = pixels.transpose(0, 3, 1, 2)
        try:
            features = self._model.run(
                self._output, {self._input_name: np.ascontiguousarray(pixels)}
            )
        except Exception as exc:  # shape/type mismatches surface as onnxruntime errors
            raise ModelError(
                f"ONNX model rejected a float32 input of shape {pixels.shape}: {exc}; "
                "check input_size and layout"
            ) from exc
        features = np.asarray(features, dtype=np.float32)
        if features.ndim > 2:
            features = features.reshape(features.shape[0], features.shape[1], -1).mean(axis=2)
        return l2_normalise(features)
