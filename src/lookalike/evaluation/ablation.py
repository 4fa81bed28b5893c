"""The ablation: several configurations (descriptor recipe, re-ranking stages, copy mode) on
the same queries, each compared with the first (the old recipe) by a paired bootstrap.

Every configuration ranks through the real query pipeline, so a re-ranking stage is measured as
the unit users get: each query (an indexed image, searched by id like "more like this") takes
the pipeline's top ``shortlist`` results, and the rest of the gallery follows in cosine order of
the stored vectors so that mAP still covers the whole gallery. Indexes are exact (no graph), so
the shortlist is the true cosine top before any stage re-orders it.

Costs: ms/image is indexing time (decode, embed, store, several worker processes) per image;
ms/query is the median of one warm search from an image file, end to end through the
configuration's pipeline (decode, embed, search, re-rank).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.quality import spec_for
from lookalike.engine import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.evaluation.bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Interval,
    paired_bootstrap,
)
from lookalike.evaluation.datasets import Dataset
from lookalike.evaluation.per_query import QueryMetrics, score_orders
from lookalike.evaluation.runner import RetrievalScores, embedder_label, slug
from lookalike.index_options import IndexOptions
from lookalike.query.pipeline import QueryPipeline
from lookalike.rerank_settings import RerankOverride
from lookalike.search_options import SearchOptions

Progress = Callable[[str], None]
_BLOCK = 256


@dataclass(frozen=True)
class QueryStages:
    """Which query-time steps of issue 12 run after the candidate search."""

    expansion: bool = False  # alpha-query expansion
    hubness: bool = False  # CSLS hubness correction
    verify: bool = False  # copy mode: ORB + RANSAC geometric verification of the shortlist

    def describe(self) -> str:
        names = [n for n, on in (("QE", self.expansion), ("CSLS", self.hubness)) if on]
        names += ["verify"] if self.verify else []
        return " + ".join(names) or "-"


@dataclass(frozen=True)
class AblationConfig:
    """One row of the ablation: a full embedder spec (name and recipe params) and the stages."""

    label: str
    embedder: EmbedderSpec
    stages: QueryStages = QueryStages()

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise InvalidInputError("an ablation configuration needs a label")


#: The recipe of today: 224 px centre crop, average pooling (empty params keep it).
OLD_RECIPE = EmbedderSpec("efficientnet-lite0")
#: The new default (``--quality balanced``): the whole image, aspect kept, GeM pooling, int8.
NEW_DESCRIPTOR = spec_for("efficientnet-lite0")

#: The ablation `lookalike evaluate --ablation` runs, in order; the first row is the reference
#: every other row is compared with. The one table to edit when a step lands.
ABLATION_STEPS: tuple[AblationConfig, ...] = (
    AblationConfig("old recipe (lite0 crop 224, avg pool)", OLD_RECIPE),
    AblationConfig("old recipe, int8", EmbedderSpec("efficientnet-lite0-int8")),
    AblationConfig("raw pixels (baseline)", EmbedderSpec("pixels")),
    AblationConfig("new descriptor (balanced)", NEW_DESCRIPTOR),
    AblationConfig("new descriptor, float32 (best)", spec_for("efficientnet-lite0", "best")),
    AblationConfig("new + QE", NEW_DESCRIPTOR, QueryStages(expansion=True)),
    AblationConfig("new + CSLS", NEW_DESCRIPTOR, QueryStages(hubness=True)),
    AblationConfig("new + QE + CSLS", NEW_DESCRIPTOR, QueryStages(expansion=True, hubness=True)),
    AblationConfig("new + copy mode (verify)", NEW_DESCRIPTOR, QueryStages(verify=True)),
)


def configure(pipeline: QueryPipeline, stages: QueryStages) -> QueryPipeline:
    """``pipeline`` with the re-ranking stages of ``stages`` switched on or off, whatever the
    index records: the one place the ablation reaches into the query pipeline's options. Copy
    mode is an argument of each search (``verify=True``), passed by the ranking below."""
    override = RerankOverride(expansion=stages.expansion, hubness=stages.hubness)
    index_stages = pipeline.index_stages
    return replace(pipeline, index_stages=lambda _: index_stages(override))


def embedder_configs(names: Sequence[str | EmbedderSpec]) -> tuple[AblationConfig, ...]:
    """One plain configuration per embedder, in order (repeats dropped); the first is the
    reference the others are compared with."""
    configs: dict[str, AblationConfig] = {}
    for name in names:
        spec = spec_for(name)
        configs.setdefault(spec.key(), AblationConfig(embedder_label(name), spec))
    return tuple(configs.values())


@dataclass(frozen=True)
class AblationOptions:
    workers: int | None = None
    shortlist: int = 100
    latency_queries: int = 20
    resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shortlist < 1:
            raise InvalidInputError(f"shortlist must be at least 1, got {self.shortlist}")
        if self.latency_queries < 1:
            raise InvalidInputError(
                f"latency_queries must be at least 1, got {self.latency_queries}"
            )


@dataclass(frozen=True)
class ConfigResult:
    """One configuration's figures; ``differences`` maps a metric to its difference to the
    first configuration (empty for the first itself)."""

    config: AblationConfig
    scores: RetrievalScores
    per_query: QueryMetrics = field(repr=False)
    dim: int
    ms_per_image: float
    ms_per_query: float
    differences: dict[str, Interval]


@dataclass(frozen=True)
class AblationResult:
    dataset: Dataset
    compared: tuple[str, ...]
    rows: tuple[ConfigResult, ...]
    options: AblationOptions


def compared_metrics(dataset: Dataset) -> tuple[str, ...]:
    """The metrics that matter for a dataset, primary first; intervals are given for these."""
    if dataset.kind == "copies":
        return ("recall_at_1", "map", "ns")
    if dataset.kind == "ukbench":
        return ("ns", "map")
    return ("map", "precision_at_10")


def run_ablation(
    dataset: Dataset,
    configs: Sequence[AblationConfig],
    work_dir: Path,
    *,
    options: AblationOptions = AblationOptions(),
    progress: Progress | None = None,
) -> AblationResult:
    """Run every configuration on ``dataset``'s queries; indexes go under
    ``work_dir/indexes``, one per distinct embedder spec.

    Example:
        >>> result = run_ablation(dataset, ABLATION_STEPS, Path("out"))  # doctest: +SKIP
    """
    if not configs:
        raise InvalidInputError("the ablation needs at least one configuration")
    say = progress or (lambda message: None)
    _read_once(dataset)
    built: dict[str, tuple[Path, float]] = {}
    measured: list[tuple[AblationConfig, QueryMetrics, int, float, float]] = []
    for config in configs:
        if config.stages.verify and dataset.kind != "copies":
            # Copy mode answers "is this the same picture?": on other sets it only costs time.
            say(f"{config.label}: skipped (copy mode is measured on copy sets)")
            continue
        key = config.embedder.key()
        if key not in built:
            say(f"{config.label}: indexing {len(dataset.items)} images")
            built[key] = _build_index(dataset, config.embedder, work_dir, len(built), options)
        index_dir, ms_per_image = built[key]
        say(f"{config.label}: ranking {len(dataset.queries())} queries")
        with SearchEngine.open(index_dir) as engine:
            pipeline = configure(engine.pipeline, config.stages)
            # Timed before the ranking: BLAS threads still spinning after its large products
            # would slow the network down on a small machine.
            verify = config.stages.verify
            ms_per_query = _latency(dataset, pipeline, options, verify=verify)
            per_query, dim = _rank(dataset, engine, pipeline, options, verify=verify)
        measured.append((config, per_query, dim, ms_per_image, ms_per_query))
    compared = compared_metrics(dataset)
    reference = measured[0][1]
    rows = []
    for index, (config, per_query, dim, ms_image, ms_query) in enumerate(measured):
        differences = {} if index == 0 else _differences(reference, per_query, compared, options)
        scores = per_query.summary()
        rows.append(ConfigResult(config, scores, per_query, dim, ms_image, ms_query, differences))
    return AblationResult(dataset, compared, tuple(rows), options)


def _differences(
    reference: QueryMetrics,
    other: QueryMetrics,
    compared: Sequence[str],
    options: AblationOptions,
) -> dict[str, Interval]:
    return {
        metric: paired_bootstrap(
            reference.values(metric),
            other.values(metric),
            resamples=options.resamples,
            confidence=options.confidence,
            seed=options.seed,
        )
        for metric in compared
    }


def _read_once(dataset: Dataset) -> None:
    """Read every file once, so that the first configuration's ms/image is not also the cost
    of a cold disk cache."""
    for item in dataset.items:
        item.path.read_bytes()


def _build_index(
    dataset: Dataset, spec: EmbedderSpec, work_dir: Path, number: int, options: AblationOptions
) -> tuple[Path, float]:
    """A fresh exact index of ``dataset.root`` and its indexing cost in ms per image."""
    index_dir = work_dir / "indexes" / f"{number:02d}-{slug(spec.name)}"
    shutil.rmtree(index_dir, ignore_errors=True)
    with SearchEngine.create(index_dir, embedder=spec, index_type="exact") as engine:
        engine.embedder  # noqa: B018  (model loading is not indexing time)
        report = engine.index_folder(dataset.root, options=IndexOptions(workers=options.workers))
    if report.embedded == 0:
        raise InvalidInputError(f"{dataset.root}: no image could be indexed")
    return index_dir, report.seconds * 1000.0 / report.embedded


def _rank(
    dataset: Dataset,
    engine: SearchEngine,
    pipeline: QueryPipeline,
    options: AblationOptions,
    *,
    verify: bool,
) -> tuple[QueryMetrics, int]:
    """Each query's ranking of the gallery: the pipeline's shortlist, then the rest in cosine
    order of the stored vectors."""
    paths, vectors = engine.export_vectors()
    ids = engine.vector_index().ids
    row_of = {p: i for i, p in enumerate(paths)}
    rows = []
    for item in dataset.items:
        row = row_of.get(str(item.path.resolve()))
        if row is None:
            raise InvalidInputError(
                f"{item.path}: a benchmark image could not be indexed; fix or remove it"
            )
        rows.append(row)
    item_rows = np.asarray(rows)
    gallery = np.asarray(dataset.gallery())
    position = {int(item_rows[g]): i for i, g in enumerate(gallery.tolist())}
    position_by_id = {int(ids[row]): pos for row, pos in position.items()}
    gallery_vectors = vectors[item_rows[gallery]]
    queries = np.asarray(dataset.queries())
    orders: list[npt.NDArray[np.int64]] = []
    for start in range(0, len(queries), _BLOCK):
        block = queries[start : start + _BLOCK]
        query_ids = [int(ids[item_rows[q]]) for q in block.tolist()]
        k = min(options.shortlist, max(len(gallery) - 1, 1))
        results = pipeline.search_ids(query_ids, SearchOptions(k=k, verify=verify))
        sims = vectors[item_rows[block]] @ gallery_vectors.T
        for row, result in enumerate(results):
            own = position.get(int(item_rows[block[row]]))
            head = np.asarray(
                [position_by_id[m.id] for m in result.matches if m.id in position_by_id],
                dtype=np.int64,
            )
            cosine = np.argsort(-sims[row], kind="stable")
            tail = cosine[~np.isin(cosine, head) & (cosine != (-1 if own is None else own))]
            orders.append(np.concatenate((head, tail)).astype(np.int64))
    return score_orders(dataset, orders), int(vectors.shape[1])


def _latency(
    dataset: Dataset, pipeline: QueryPipeline, options: AblationOptions, *, verify: bool
) -> float:
    """Median milliseconds of one warm single-image search from its file, end to end."""
    picks = dataset.queries()[: options.latency_queries + 1]
    paths = [str(dataset.items[i].path) for i in picks]
    search = SearchOptions(k=10, verify=verify)
    pipeline.search(paths[:1], search)
    timings = []
    for path in paths[1:] or paths:
        start = time.perf_counter()
        pipeline.search([path], search)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings) * 1000.0)


__all__ = [
    "ABLATION_STEPS",
    "OLD_RECIPE",
    "AblationConfig",
    "AblationOptions",
    "AblationResult",
    "ConfigResult",
    "QueryStages",
    "compared_metrics",
    "configure",
    "embedder_configs",
    "run_ablation",
]
