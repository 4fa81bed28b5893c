"""Embedders, chosen by name. Heavy libraries load only when an embedder is built."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from lookalike.embedders.base import Embedder, EmbedderSpec, InputSpec
from lookalike.errors import InvalidInputError

ALIASES = {
    "histogram": "colour-histogram",
    "color-histogram": "colour-histogram",
    "lite0": "efficientnet-lite0",
    "lite1": "efficientnet-lite1",
    "lite2": "efficientnet-lite2",
    "lite0-int8": "efficientnet-lite0-int8",
    "lite1-int8": "efficientnet-lite1-int8",
    "lite2-int8": "efficientnet-lite2-int8",
}
DEFAULT_EMBEDDER = "efficientnet-lite0"
CLASSICAL = ("pixels", "colour-histogram")
#: The file that marks a folder as a model trained by `lookalike train`.
TRAINED_MODEL_FILE = "lookalike-model.json"
N = TypeVar("N", int, float)


def resolve_spec(name_or_path: str | EmbedderSpec) -> EmbedderSpec:
    """Turn what a user typed (``lite0``, ``efficientnet-lite2``, ``model.onnx``) into a spec."""
    if isinstance(name_or_path, EmbedderSpec):
        return name_or_path
    name = ALIASES.get(name_or_path, name_or_path)
    if name.startswith("efficientnet-lite") or name in CLASSICAL:
        return EmbedderSpec(name)
    if (Path(name).expanduser() / TRAINED_MODEL_FILE).is_file():
        return EmbedderSpec("trained", {"path": str(Path(name).expanduser().resolve())})
    if name.endswith(".onnx"):
        return EmbedderSpec("onnx", {"path": str(Path(name).expanduser().resolve())})
    raise InvalidInputError(
        f"unknown embedder {name_or_path!r}; use lite0, lite1, lite2 (or lite0-int8...), pixels, "
        "colour-histogram, "
        "the path of an .onnx file, or a model folder made by `lookalike train`"
    )


def create_embedder(spec: EmbedderSpec, *, threads: int | None = None) -> Embedder:
    """Build the embedder a spec names."""
    if spec.name.startswith("efficientnet-lite"):
        from lookalike.embedders.pretrained import EfficientNetLite

        return EfficientNetLite(spec.name, threads=threads)
    if spec.name == "pixels":
        from lookalike.embedders.classical import RawPixels

        return RawPixels(size=_number(spec.params.get("size"), 32, int))
    if spec.name == "colour-histogram":
        from lookalike.embedders.classical import ColourHistogram

        return ColourHistogram(
            bins=_number(spec.params.get("bins"), 8, int),
            size=_number(spec.params.get("size"), 64, int),
        )
    if spec.name == "trained":
        from lookalike.embedders.trained import load_trained_embedder

        return load_trained_embedder(Path(str(spec.params["path"])), threads=threads)
    if spec.name == "onnx":
        from lookalike.embedders.onnx import OnnxEmbedder

        p = spec.params
        mean = p.get("mean", [0.485, 0.456, 0.406])
        std = p.get("std", [0.229, 0.224, 0.225])
        if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
            raise InvalidInputError(
                f"onnx embedder: mean and std must be 3 numbers, got {mean}, {std}"
            )
        output = p.get("output")
        return OnnxEmbedder(
            str(p["path"]),
            input_size=_number(p.get("input_size"), 224, int),
            crop_fraction=_number(p.get("crop_fraction"), 0.875, float),
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            output=str(output) if output else None,
            layout=str(p.get("layout", "nchw")),
            threads=threads,
        )
    raise InvalidInputError(f"unknown embedder {spec.name!r} in spec {spec.key()}")


def _number(value: object, default: N, kind: type[N]) -> N:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInputError(f"expected a number in the embedder spec, got {value!r}")
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidInputError(f"expected a number in the embedder spec, got {value!r}") from exc


__all__ = [
    "ALIASES",
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderSpec",
    "InputSpec",
    "create_embedder",
    "resolve_spec",
]
