"""Running a benchmark: index a dataset with each embedder through the real engine, rank the
whole gallery for every query, and score the rankings."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lookalike.embedders.base import EmbedderSpec
from lookalike.embedders.quality import spec_for
from lookalike.embedders.registry import baseline_names
from lookalike.engine import SearchEngine
from lookalike.errors import InvalidInputError
from lookalike.evaluation import metrics
from lookalike.evaluation.datasets import Dataset
from lookalike.index_options import IndexOptions
from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import Projection

BASELINES = baseline_names()
_BLOCK = 256


@dataclass(frozen=True)
class RetrievalScores:
    """Means over queries. ``recall@10`` is the fraction of a query's relevant images found in
    the top 10; ``recall@1`` is the fraction of queries whose first result is relevant (the
    copy-detection figure); ``ns`` is UKBench's N-S score (None where the layout has none)."""

    map: float | None
    precision_at_1: float
    precision_at_5: float
    precision_at_10: float
    recall_at_10: float | None
    recall_at_1: float
    ns: float | None
    queries: int
    queries_without_relevant: int
    pr_curve: tuple[float, ...]


@dataclass(frozen=True)
class SampleQuery:
    """One query and its top results, for montages: (path, score, relevant) per result."""

    query: Path
    results: tuple[tuple[Path, float, bool], ...]


@dataclass(frozen=True)
class EmbedderEvaluation:
    name: str
    spec: EmbedderSpec
    scores: RetrievalScores
    images_per_second: float
    index_seconds: float
    query_ms_p50: float
    dim: int
    search_ms: float
    samples: tuple[SampleQuery, ...]
    relevant_scores: npt.NDArray[np.float32] = field(repr=False)
    irrelevant_scores: npt.NDArray[np.float32] = field(repr=False)
    map_vectors: npt.NDArray[np.float32] = field(repr=False)
    map_groups: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class EvalOptions:
    workers: int | None = None
    latency_queries: int = 20
    sample_queries: int = 6
    sample_k: int = 6
    map_points: int = 1500
    seed: int = 0
    #: Also score each embedder's vectors after a PCA (learned on the gallery) to these sizes.
    pca_dims: tuple[int, ...] = ()
    whiten: bool = False


Progress = Callable[[str], None]


def embedder_list(
    requested: Sequence[str | EmbedderSpec], *, baselines: bool = True
) -> list[str | EmbedderSpec]:
    """The requested embedders (default: lite0), plus the baselines, without repeats."""
    names: list[str | EmbedderSpec] = list(requested) or ["lite0"]
    if baselines:
        names += list(BASELINES)
    seen: dict[str, str | EmbedderSpec] = {}
    for name in names:
        seen.setdefault(spec_for(name).key(), name)
    return list(seen.values())


def embedder_label(embedder: str | EmbedderSpec) -> str:
    """How reports name an embedder: as typed, or a spec's name and its recipe params."""
    if isinstance(embedder, str):
        return embedder
    params = " ".join(f"{k}={v}" for k, v in sorted(embedder.params.items()))
    return f"{embedder.name} {params}" if params else embedder.name


def evaluate(
    dataset: Dataset,
    embedders: Sequence[str | EmbedderSpec],
    work_dir: Path,
    *,
    options: EvalOptions = EvalOptions(),
    progress: Progress | None = None,
) -> list[EmbedderEvaluation]:
    """Evaluate each embedder (a name as typed, or a full spec with its recipe params) on
    ``dataset``; indexes are built under ``work_dir/indexes``."""
    say = progress or (lambda message: None)
    results = []
    for embedder in embedders:
        name = embedder_label(embedder)
        say(f"{name}: indexing {len(dataset.items)} images")
        result, vectors = _evaluate_one(dataset, embedder, work_dir, options, say)
        results.append(result)
        for dim in options.pca_dims:
            if dim >= vectors.shape[1]:
                say(f"{name}: no PCA to {dim} (its vectors have {vectors.shape[1]} dimensions)")
                continue
            say(f"{name}: ranking after PCA to {dim}" + (" (whitened)" if options.whiten else ""))
            results.append(_projected(dataset, result, vectors, dim, options))
    return results


def _projected(
    dataset: Dataset,
    base: EmbedderEvaluation,
    vectors: npt.NDArray[np.float32],
    dim: int,
    options: EvalOptions,
) -> EmbedderEvaluation:
    """``base``'s vectors projected by a PCA learned on the gallery, scored the same way."""
    gallery = np.asarray(dataset.gallery())
    projection = Projection.fit(vectors[gallery], dim, whiten=options.whiten, seed=options.seed)
    projected = projection(vectors)
    ranking = _score(dataset, projected, "cosine", options)
    return replace(
        base,
        name=f"{base.name} + PCA {dim}" + (" whitened" if options.whiten else ""),
        scores=ranking.scores,
        dim=dim,
        search_ms=_search_ms(dataset, projected, "cosine", options),
        samples=ranking.samples,
        relevant_scores=ranking.relevant_scores,
        irrelevant_scores=ranking.irrelevant_scores,
        map_vectors=projected[_map_rows(dataset, options)],
    )


def _map_rows(dataset: Dataset, options: EvalOptions) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(options.seed)
    gallery = np.asarray(dataset.gallery())
    return np.sort(rng.choice(gallery, size=min(options.map_points, len(gallery)), replace=False))


def _search_ms(
    dataset: Dataset, vectors: npt.NDArray[np.float32], metric: str, options: EvalOptions
) -> float:
    """Median milliseconds of one exact top-10 search of the gallery, vectors given."""
    gallery = np.asarray(dataset.gallery())
    index = ExactIndex(gallery.astype(np.int64), vectors[gallery], metric=metric)
    queries = vectors[np.asarray(dataset.queries())[: max(options.latency_queries, 1)]]
    index.search(queries[:1], 10)
    timings = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None], 10)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings) * 1000.0)


def _evaluate_one(
    dataset: Dataset,
    embedder: str | EmbedderSpec,
    work_dir: Path,
    options: EvalOptions,
    say: Progress,
) -> tuple[EmbedderEvaluation, npt.NDArray[np.float32]]:
    """The evaluation of one embedder, and its vectors of ``dataset.items``, in order."""
    spec = spec_for(embedder)
    name = embedder_label(embedder)
    index_dir = work_dir / "indexes" / slug(name)
    shutil.rmtree(index_dir, ignore_errors=True)
    with SearchEngine.create(index_dir, embedder=spec) as engine:
        engine.embedder  # noqa: B018  (model loading is not indexing time)
        report = engine.index_folder(dataset.root, options=IndexOptions(workers=options.workers))
        paths, vectors = engine.export_vectors()
        row = {p: i for i, p in enumerate(paths)}
        missing = [str(item.path) for item in dataset.items if str(item.path.resolve()) not in row]
        if missing:
            raise InvalidInputError(
                f"{len(missing)} benchmark images could not be indexed, e.g. {missing[0]}; "
                "fix or remove them"
            )
        item_vectors = vectors[[row[str(item.path.resolve())] for item in dataset.items]]
        say(f"{name}: ranking {len(dataset.queries())} queries")
        ranking = _score(dataset, item_vectors, engine.manifest.metric, options)
        latency = _latency(engine, dataset, options)
        metric = engine.manifest.metric
    chosen = _map_rows(dataset, options)
    evaluation = EmbedderEvaluation(
        name=name,
        spec=engine.manifest.embedder,
        scores=ranking.scores,
        images_per_second=report.images_per_second,
        index_seconds=report.seconds,
        query_ms_p50=latency,
        dim=int(item_vectors.shape[1]),
        search_ms=_search_ms(dataset, item_vectors, metric, options),
        samples=ranking.samples,
        relevant_scores=ranking.relevant_scores,
        irrelevant_scores=ranking.irrelevant_scores,
        map_vectors=item_vectors[chosen],
        map_groups=tuple(dataset.items[i].group for i in chosen),
    )
    return evaluation, item_vectors


@dataclass(frozen=True)
class _Ranking:
    scores: RetrievalScores
    samples: tuple[SampleQuery, ...]
    relevant_scores: npt.NDArray[np.float32]
    irrelevant_scores: npt.NDArray[np.float32]


def _score(
    dataset: Dataset, vectors: npt.NDArray[np.float32], metric: str, options: EvalOptions
) -> _Ranking:
    queries = np.asarray(dataset.queries())
    gallery = np.asarray(dataset.gallery())
    _, group_ids = np.unique([item.group for item in dataset.items], return_inverse=True)
    gallery_groups = group_ids[gallery]
    gallery_vectors = vectors[gallery]
    position = {int(g): i for i, g in enumerate(gallery)}
    rng = np.random.default_rng(options.seed)
    sampled = set(
        rng.choice(
            len(queries), size=min(options.sample_queries, len(queries)), replace=False
        ).tolist()
    )
    score_sample = set(
        rng.choice(len(queries), size=min(200, len(queries)), replace=False).tolist()
    )
    ap, p1, p5, p10, r10, hit1, ns, curves = [], [], [], [], [], [], [], []
    relevant_scores: list[npt.NDArray[np.float32]] = []
    irrelevant_scores: list[npt.NDArray[np.float32]] = []
    samples = []
    for start in range(0, len(queries), _BLOCK):
        block = queries[start : start + _BLOCK]
        sims = _similarities(vectors[block], gallery_vectors, metric)
        for row, query in enumerate(block.tolist()):
            order_all = np.argsort(-sims[row], kind="stable")
            relevant_all = gallery_groups[order_all] == group_ids[query]
            own = position.get(query)
            keep = order_all != own if own is not None else np.ones(len(order_all), bool)
            order, ranked = order_all[keep], relevant_all[keep]
            n_relevant = int(np.count_nonzero(relevant_all)) - (1 if own is not None else 0)
            ap.append(metrics.average_precision(ranked, n_relevant))
            p1.append(metrics.precision_at_k(ranked, 1))
            p5.append(metrics.precision_at_k(ranked, 5))
            p10.append(metrics.precision_at_k(ranked, 10))
            r10.append(metrics.recall_at_k(ranked, 10, n_relevant))
            hit1.append(metrics.hit_at_k(ranked, 1))
            if dataset.has_ns:
                with_query = relevant_all if own is not None else np.concatenate(([True], ranked))
                ns.append(metrics.ns_score(with_query))
            curves.append(metrics.interpolated_precision(ranked, n_relevant))
            index = start + row
            if index in score_sample:
                values = sims[row][order]
                relevant_scores.append(values[ranked])
                others = values[~ranked]
                pick = rng.choice(len(others), size=min(2000, len(others)), replace=False)
                irrelevant_scores.append(others[np.sort(pick)])
            if index in sampled:
                top = order[: options.sample_k]
                samples.append(
                    SampleQuery(
                        dataset.items[query].path,
                        tuple(
                            (dataset.items[int(gallery[g])].path, float(sims[row][g]), bool(r))
                            for g, r in zip(top, ranked[: options.sample_k], strict=True)
                        ),
                    )
                )
    mean_ap, without = metrics.mean_or_none(ap)
    defined_curves = [c for c in curves if c is not None]
    pr = np.mean(defined_curves, axis=0) if defined_curves else np.zeros(11)
    scores = RetrievalScores(
        map=mean_ap,
        precision_at_1=float(np.mean(p1)),
        precision_at_5=float(np.mean(p5)),
        precision_at_10=float(np.mean(p10)),
        recall_at_10=metrics.mean_or_none(r10)[0],
        recall_at_1=float(np.mean(hit1)),
        ns=float(np.mean(ns)) if ns else None,
        queries=len(queries),
        queries_without_relevant=without,
        pr_curve=tuple(float(x) for x in pr),
    )
    return _Ranking(
        scores,
        tuple(samples),
        np.concatenate(relevant_scores) if relevant_scores else np.zeros(0, np.float32),
        np.concatenate(irrelevant_scores) if irrelevant_scores else np.zeros(0, np.float32),
    )


def _similarities(
    queries: npt.NDArray[np.float32], gallery: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float32]:
    dots: npt.NDArray[np.float32] = queries @ gallery.T
    if metric == "cosine":
        return dots
    q = np.einsum("ij,ij->i", queries, queries)[:, None]
    g = np.einsum("ij,ij->i", gallery, gallery)[None, :]
    out: npt.NDArray[np.float32] = -np.sqrt(np.maximum(q + g - 2 * dots, 0.0))
    return out


def _latency(engine: SearchEngine, dataset: Dataset, options: EvalOptions) -> float:
    """Median milliseconds of one warm, single-image search, end to end."""
    paths = [str(dataset.items[i].path) for i in dataset.queries()[: options.latency_queries + 1]]
    engine.search(paths[:1], k=10)
    timings = []
    for path in paths[1:] or paths:
        start = time.perf_counter()
        engine.search([path], k=10)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings) * 1000.0)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", Path(name).name if name.endswith(".onnx") else name)
