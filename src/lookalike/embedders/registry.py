"""Every embedder lookalike can build, by name, in one table.

An entry names an embedder (the name recorded in specs and manifests), its aliases, a one-line
description for help and error messages, and a factory from an :class:`EmbedderSpec`. Entries
that take a file (an ONNX model, a trained model folder) claim a path instead of a name. The
table is written out here, never filled by imports, so reading it imports no heavy library:
each factory imports its code when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lookalike.embedders.base import Embedder, EmbedderSpec
from lookalike.embedders.model_folder import CONFIG_FILE
from lookalike.embedders.pretrained import FEATURE_DIM, INT8, VARIANTS  # tables, no network
from lookalike.errors import InvalidInputError

N = TypeVar("N", int, float)

#: Builds the embedder of a spec; the second argument is the thread count (None: every core).
Factory = Callable[[EmbedderSpec, int | None], Embedder]


@dataclass(frozen=True)
class EmbedderEntry:
    """One way to embed. ``claims`` is set for entries chosen by a path rather than a name: it
    says whether a path is theirs, and the spec then records the path. ``shown_as`` is what
    help texts show (default: the name). ``heavy`` marks the ones that need the real network
    (bundled weights, exported with PyTorch on first use); ``baseline`` the classical ones."""

    name: str
    description: str
    factory: Factory
    aliases: tuple[str, ...] = ()
    claims: Callable[[Path], bool] | None = None
    shown_as: str = ""
    heavy: bool = False
    baseline: bool = False

    @property
    def label(self) -> str:
        return self.shown_as or self.name


def _efficientnet(spec: EmbedderSpec, threads: int | None) -> Embedder:
    from lookalike.embedders.pretrained import EfficientNetLite
    from lookalike.embedders.recipe import Recipe

    return EfficientNetLite(spec.name, recipe=Recipe.from_params(spec.params), threads=threads)


def _pixels(spec: EmbedderSpec, threads: int | None) -> Embedder:
    from lookalike.embedders.classical import RawPixels

    return RawPixels(size=_number(spec.params.get("size"), 32, int))


def _histogram(spec: EmbedderSpec, threads: int | None) -> Embedder:
    from lookalike.embedders.classical import ColourHistogram

    return ColourHistogram(
        bins=_number(spec.params.get("bins"), 8, int),
        size=_number(spec.params.get("size"), 64, int),
    )


def _trained(spec: EmbedderSpec, threads: int | None) -> Embedder:
    from lookalike.embedders.trained import load_trained_embedder

    return load_trained_embedder(Path(str(spec.params["path"])), threads=threads)


def _onnx(spec: EmbedderSpec, threads: int | None) -> Embedder:
    from lookalike.embedders.onnx import OnnxEmbedder

    p = spec.params
    mean = p.get("mean", [0.485, 0.456, 0.406])
    std = p.get("std", [0.229, 0.224, 0.225])
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
        raise InvalidInputError(f"onnx embedder: mean and std must be 3 numbers, got {mean}, {std}")
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


def _is_model_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def _is_onnx_file(path: Path) -> bool:
    return path.name.endswith(".onnx")


def _efficientnet_entries() -> tuple[EmbedderEntry, ...]:
    plain, int8 = [], []
    for variant in VARIANTS.values():
        short = variant.name.removeprefix("efficientnet-")  # lite0
        title = f"EfficientNet-{short.capitalize()}"
        plain.append(
            EmbedderEntry(
                variant.name,
                f"{title}, ImageNet weights, {variant.image_size} px, {FEATURE_DIM}-d",
                _efficientnet,
                aliases=(short,),
                shown_as=short,
                heavy=True,
            )
        )
        int8.append(
            EmbedderEntry(
                variant.name + INT8,
                f"{title} quantised to int8, ~1.25x faster on a CPU",
                _efficientnet,
                aliases=(short + INT8,),
                shown_as=short + INT8,
                heavy=True,
            )
        )
    return (*plain, *int8)


#: Every embedder, in the order help texts list them. The first is the default.
EMBEDDERS: tuple[EmbedderEntry, ...] = (
    *_efficientnet_entries(),
    EmbedderEntry("pixels", "raw pixels, 32 x 32 RGB (a baseline)", _pixels, baseline=True),
    EmbedderEntry(
        "colour-histogram",
        "joint RGB colour histogram (a baseline)",
        _histogram,
        aliases=("histogram", "color-histogram"),
        baseline=True,
    ),
    # A model folder is checked before the .onnx suffix: a folder may be named x.onnx.
    EmbedderEntry(
        "trained",
        "a model folder made by `lookalike train`",
        _trained,
        claims=_is_model_folder,
    ),
    EmbedderEntry(
        "onnx",
        "the path of an .onnx file (any ONNX image model)",
        _onnx,
        claims=_is_onnx_file,
    ),
)
DEFAULT_EMBEDDER = EMBEDDERS[0].name
_BY_NAME = {entry.name: entry for entry in EMBEDDERS}
#: Alias -> canonical name, for the entries chosen by name.
ALIASES = {alias: entry.name for entry in EMBEDDERS for alias in entry.aliases}


def entry_for(name: str) -> EmbedderEntry | None:
    """The entry a canonical name or an alias names (named entries only), or None."""
    entry = _BY_NAME.get(ALIASES.get(name, name))
    return entry if entry is not None and entry.claims is None else None


def baseline_names() -> tuple[str, ...]:
    """The classical baselines, which evaluations add beside learned embedders."""
    return tuple(entry.name for entry in EMBEDDERS if entry.baseline)


def choices() -> str:
    """The accepted values in one phrase, for error messages."""
    named = [entry.label for entry in EMBEDDERS if entry.claims is None]
    files = [entry.description for entry in EMBEDDERS if entry.claims is not None]
    return ", ".join(named + files[:-1]) + f", or {files[-1]}"


def describe() -> str:
    """Each accepted value with its description, for help texts."""
    return "; ".join(
        entry.description if entry.claims else f"{entry.label}: {entry.description}"
        for entry in EMBEDDERS
    )


def resolve_spec(name_or_path: str | EmbedderSpec) -> EmbedderSpec:
    """Turn what a user typed (``lite0``, ``efficientnet-lite2``, ``model.onnx``) into a spec."""
    if isinstance(name_or_path, EmbedderSpec):
        return name_or_path
    entry = entry_for(name_or_path)
    if entry is not None:
        return EmbedderSpec(entry.name)
    path = Path(name_or_path).expanduser()
    for entry in EMBEDDERS:
        if entry.claims is not None and entry.claims(path):
            return EmbedderSpec(entry.name, {"path": str(path.resolve())})
    raise InvalidInputError(f"unknown embedder {name_or_path!r}; use {choices()}")


def create_embedder(spec: EmbedderSpec, *, threads: int | None = None) -> Embedder:
    """Build the embedder a spec names."""
    entry = _BY_NAME.get(spec.name)
    if entry is None:
        known = ", ".join(_BY_NAME)
        raise InvalidInputError(
            f"unknown embedder {spec.name!r} in spec {spec.key()}; known embedders: {known}"
        )
    return entry.factory(spec, threads)


def _number(value: object, default: N, kind: type[N]) -> N:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInputError(f"expected a number in the embedder spec, got {value!r}")
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidInputError(f"expected a number in the embedder spec, got {value!r}") from exc
