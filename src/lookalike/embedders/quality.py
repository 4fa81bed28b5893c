"""Quality presets: one word (``--quality fast|balanced|best``) for how an EfficientNet index
describes its images. Each names a descriptor recipe and whether the network runs in int8;
``classic`` is the recipe of every tutorial (and of indexes made before recipes existed).

The choices and their measured cost and quality are in the README (Figures); they were
chosen by the ablation of ``lookalike evaluate --ablation`` on the development sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.pretrained import INT8, VARIANTS
from lookalike.embedders.recipe import Recipe
from lookalike.errors import InvalidInputError
from lookalike.rerank_settings import DEFAULT_RERANKING, RerankSettings


@dataclass(frozen=True)
class Quality:
    """A preset: the recipe an EfficientNet index records, whether it runs in int8, and the
    re-ranking stages its searches use."""

    name: str
    description: str
    recipe: Recipe
    int8: bool = False
    reranking: RerankSettings = DEFAULT_RERANKING


QUALITIES: tuple[Quality, ...] = (
    Quality(
        "fast",
        "whole image, shorter side 224 px, GeM pooling, int8 network",
        Recipe(input="whole", size=224, max_size=448, pooling="gem", gem_p=2.0),
        int8=True,
    ),
    Quality(
        "balanced",
        "whole image, shorter side 256 px, GeM pooling, int8 network; query expansion",
        Recipe(input="whole", size=256, max_size=512, pooling="gem", gem_p=2.0),
        int8=True,
        reranking=RerankSettings(expansion=True),
    ),
    Quality(
        "best",
        "whole image, shorter side 256 px, GeM pooling, float32 network; query expansion and "
        "hubness correction (its statistic costs minutes per 100,000 images)",
        Recipe(input="whole", size=256, max_size=512, pooling="gem", gem_p=2.0),
        reranking=RerankSettings(expansion=True, hubness=True),
    ),
    Quality(
        "classic",
        "centre crop at the network's size, average pooling (what indexes made before "
        "recipes record)",
        Recipe.classic(),
    ),
)
DEFAULT_QUALITY = "balanced"
_BY_NAME = {quality.name: quality for quality in QUALITIES}


def quality_named(name: str) -> Quality:
    quality = _BY_NAME.get(name)
    if quality is None:
        raise InvalidInputError(f"unknown quality {name!r}; use one of {', '.join(_BY_NAME)}")
    return quality


def describe() -> str:
    """Each preset with its description, for help texts."""
    return "; ".join(f"{q.name}: {q.description}" for q in QUALITIES)


def takes_recipe(spec: EmbedderSpec) -> bool:
    """Whether the spec names a pretrained EfficientNet, whose descriptor a recipe shapes."""
    return spec.name.removesuffix(INT8) in VARIANTS


def preset_for(spec: EmbedderSpec, quality: str | None) -> Quality | None:
    """The preset that shapes ``spec``: the one named, or the default for an EfficientNet
    without a recipe of its own; None when none applies (a preset named for an embedder that
    takes none is refused)."""
    if quality is None:
        return None if not takes_recipe(spec) or spec.params else quality_named(DEFAULT_QUALITY)
    if not takes_recipe(spec):
        raise InvalidInputError(
            f"--quality applies to the pretrained EfficientNet embedders, not {spec.name!r}"
        )
    return quality_named(quality)


def apply_quality(spec: EmbedderSpec, quality: str | None) -> EmbedderSpec:
    """The spec with its preset's recipe (and int8 network), as :func:`preset_for` decides;
    any other spec is returned as it is."""
    preset = preset_for(spec, quality)
    if preset is None:
        return spec
    name = spec.name
    if preset.int8 and not name.endswith(INT8):
        name += INT8
    return EmbedderSpec(name, preset.recipe.to_params())


def _preset(
    embedder: str | EmbedderSpec, quality: str | None
) -> tuple[EmbedderSpec, Quality | None]:
    """The spec ``embedder`` names and the preset that applies to it: a name (``lite0``) takes
    the quality preset (default balanced); an ``EmbedderSpec`` is taken as it is written
    (``EmbedderSpec("efficientnet-lite0")``, with no params, is the classic recipe) unless a
    quality is named."""
    from lookalike.embedders.registry import resolve_spec

    spec = resolve_spec(embedder)
    if isinstance(embedder, EmbedderSpec) and quality is None:
        return spec, None
    return spec, preset_for(spec, quality)


def spec_for(embedder: str | EmbedderSpec, quality: str | None = None) -> EmbedderSpec:
    """The spec an index is made with (see :func:`_preset` for when a preset applies)."""
    spec, preset = _preset(embedder, quality)
    return apply_quality(spec, preset.name) if preset is not None else spec


def reranking_for(embedder: str | EmbedderSpec, quality: str | None = None) -> RerankSettings:
    """The re-ranking stages a new index records: its preset's, when a preset applies (as in
    :func:`spec_for`); none for other embedders, where they were not measured."""
    _, preset = _preset(embedder, quality)
    return preset.reranking if preset is not None else DEFAULT_RERANKING


__all__ = [
    "DEFAULT_QUALITY",
    "QUALITIES",
    "Quality",
    "apply_quality",
    "describe",
    "preset_for",
    "quality_named",
    "reranking_for",
    "spec_for",
]
