"""int8 versions of the exported EfficientNet-Lite graphs: 1.2-1.5x the network's images per
second of float32 on a CPU (1.2-1.3x end to end), with no measurable loss of retrieval quality
on Fashion-MNIST (README, Figures).

Static post-training quantisation with ONNX Runtime: int8 weights per output channel, uint8
activations with ranges calibrated (99.999th percentile) on photos shipped in the package, so
the same model is made offline on every machine. What stays float32, measured on lite0 by the
cosine between int8 and float32 embeddings of photos the calibration never saw:
- everything from the head convolution on (the 1280 features, pooling, normalisation,
  classifier): quantising it too dropped the mean cosine from 0.95 to 0.85;
- the stem and the first FLOAT_BLOCKS blocks, which run at 112 and 56 pixels: quantised, they
  lost fine texture (cosine 0.70 on scikit-image's grass and gravel, 0.95 on Fashion-MNIST);
  in float32 the cosine is 0.98-0.996 on those textures and 0.98 on Fashion-MNIST, at the same
  speed (those depthwise layers are memory-bound, int8 did not make them faster).
The result is checked against the float model before it is cached.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike import durable
from lookalike.errors import ModelError
from lookalike.input_spec import InputSpec

#: Bump when the quantisation changes, so old cached int8 models are not reused.
QUANT_RECIPE = 2
#: Mean cosine between int8 and float32 embeddings of the calibration photos below which the
#: quantised model is refused (measured 0.98 on Fashion-MNIST, which it is not calibrated on).
MIN_COSINE = 0.95
#: Leading blocks kept in float32 (see above).
FLOAT_BLOCKS = 3


#: Turns a feature map (n, c, h, w) into descriptors; the guard compares these.
Pooling = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def quantized_model(float_model: Path, spec: InputSpec, pool: Pooling | None = None) -> Path:
    """The cached int8 model made from ``float_model`` (an export cached by digest),
    calibrated on the packaged photos prepared as ``spec`` says. ``pool``: how the
    descriptor is made from the graph's feature map (None: its pooled ``embedding``); the
    guard checks the descriptor users get."""
    calibrated = "" if not spec.whole else f"-w{spec.size}x{spec.max_size}"
    target = float_model.with_name(f"{float_model.stem}-int8-q{QUANT_RECIPE}{calibrated}.onnx")
    if target.is_file():
        return target
    prepared = target.with_name(f".{target.name}.{os.getpid()}.pre.onnx")
    try:
        with durable.staged(target) as tmp:
            _quantize(float_model, prepared, tmp, calibration_images(spec), pool)
    finally:
        prepared.unlink(missing_ok=True)
    return target


def calibration_images(spec: InputSpec) -> list[npt.NDArray[np.uint8]]:
    """Batches of the packaged calibration photos prepared as ``spec`` says, one shape each."""
    from lookalike.imaging import load_prepared

    folder = resources.files("lookalike.embedders") / "calibration"
    images = [
        load_prepared(entry.read_bytes(), spec)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".jpg")
    ]
    if not images:
        raise ModelError(f"{folder}: no calibration photos; reinstall lookalike")
    shapes: dict[tuple[int, ...], list[npt.NDArray[np.uint8]]] = {}
    for image in images:
        shapes.setdefault(image.shape, []).append(image)
    return [
        np.stack(group[start : start + 8])
        for group in shapes.values()
        for start in range(0, len(group), 8)
    ]


def _quantize(
    source: Path,
    prepared: Path,
    out: Path,
    batches: list[npt.NDArray[np.uint8]],
    pool: Pooling | None,
) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.next = 0

        def get_next(self) -> dict[str, Any] | None:
            if self.next >= len(batches):
                return None
            self.next += 1
            return {"image": batches[self.next - 1]}

    root = logging.getLogger()
    level = root.level
    # The quantiser logs at INFO and prints its histogram settings: a library must do neither.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantiser logs its progress at INFO
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            nodes = list(onnx.load(str(prepared)).graph.node)
            convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
            if not convs:
                raise ModelError(f"{source}: no convolutions to quantise")
            early = tuple(f"/_blocks.{block}/" for block in range(FLOAT_BLOCKS))
            keep_float = (
                [nodes[convs[0]].name]
                + [node.name for node in nodes if any(tag in node.name for tag in early)]
                + [node.name for node in nodes[convs[-1] :]]
            )
            quantize_static(
                str(prepared),
                str(out),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=keep_float,
            )
        finally:
            root.setLevel(level)
    _check(source, out, batches, pool)


def _check(
    source: Path, out: Path, batches: list[npt.NDArray[np.uint8]], pool: Pooling | None
) -> None:
    from lookalike.embedders.onnx import make_session

    float_model, int8_model = make_session(source), make_session(out)

    def describe(session: Any, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if pool is None:
            return np.asarray(session.run(["embedding"], {"image": batch})[0])
        return pool(np.asarray(session.run(["features"], {"image": batch})[0]))

    cosines = []
    for batch in batches:
        reference, got = describe(float_model, batch), describe(int8_model, batch)
        cosines.append(np.sum(reference * got, axis=1))
    cosine = float(np.mean(np.concatenate(cosines)))
    if cosine < MIN_COSINE:
        raise ModelError(
            f"int8 quantisation of {source.name} is too far from float32 (mean cosine "
            f"{cosine:.3f} < {MIN_COSINE}); use the float32 embedder"
        )
