"""Per-query metrics of rankings, kept query by query so that two configurations can be
compared on the same queries (see :mod:`lookalike.evaluation.bootstrap`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lookalike.evaluation import metrics
from lookalike.evaluation.datasets import Dataset
from lookalike.evaluation.runner import RetrievalScores

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Metric names as results.json and the ablation table spell them.
METRIC_NAMES = ("map", "precision_at_10", "recall_at_1", "ns")


@dataclass(frozen=True)
class QueryMetrics:
    """One value per query (in ``Dataset.queries()`` order) for each metric; NaN where a metric
    is undefined for that query (AP and R@10 without relevant images, N-S outside UKBench and
    copy layouts)."""

    ap: FloatArray = field(repr=False)
    p1: FloatArray = field(repr=False)
    p5: FloatArray = field(repr=False)
    p10: FloatArray = field(repr=False)
    r10: FloatArray = field(repr=False)
    hit1: FloatArray = field(repr=False)
    ns: FloatArray = field(repr=False)
    pr_curve: tuple[float, ...]

    def values(self, metric: str) -> FloatArray:
        """The per-query values of one of :data:`METRIC_NAMES`."""
        table = {"map": self.ap, "precision_at_10": self.p10, "recall_at_1": self.hit1}
        table["ns"] = self.ns
        if metric not in table:
            raise ValueError(f"unknown metric {metric!r}; use {', '.join(METRIC_NAMES)}")
        return table[metric]

    def summary(self) -> RetrievalScores:
        """The means over queries, as the embedder comparison reports them."""
        return RetrievalScores(
            map=_nanmean(self.ap),
            precision_at_1=float(np.mean(self.p1)),
            precision_at_5=float(np.mean(self.p5)),
            precision_at_10=float(np.mean(self.p10)),
            recall_at_10=_nanmean(self.r10),
            recall_at_1=float(np.mean(self.hit1)),
            ns=_nanmean(self.ns),
            queries=len(self.ap),
            queries_without_relevant=int(np.count_nonzero(np.isnan(self.ap))),
            pr_curve=self.pr_curve,
        )


def _nanmean(values: FloatArray) -> float | None:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else None


def score_orders(dataset: Dataset, orders: Sequence[IntArray]) -> QueryMetrics:
    """Score one ranking per query. ``orders[i]`` ranks gallery positions (indexes into
    ``Dataset.gallery()``) for the i-th query, best first, without the query itself; gallery
    images missing from an order count as ranked after it (they lower AP, as in
    :func:`metrics.average_precision`)."""
    queries = dataset.queries()
    gallery = dataset.gallery()
    if len(orders) != len(queries):
        raise ValueError(f"{len(orders)} rankings for {len(queries)} queries")
    _, group_ids = np.unique([item.group for item in dataset.items], return_inverse=True)
    gallery_groups = group_ids[np.asarray(gallery)]
    in_gallery = {int(g) for g in gallery}
    columns: dict[str, list[float]] = {n: [] for n in ("ap", "p1", "p5", "p10", "r10", "hit1")}
    ns: list[float] = []
    curves = []
    for query, order in zip(queries, orders, strict=True):
        ranked = gallery_groups[order] == group_ids[query]
        n_relevant = int(np.count_nonzero(gallery_groups == group_ids[query]))
        n_relevant -= 1 if query in in_gallery else 0
        columns["ap"].append(_defined(metrics.average_precision(ranked, n_relevant)))
        columns["p1"].append(metrics.precision_at_k(ranked, 1))
        columns["p5"].append(metrics.precision_at_k(ranked, 5))
        columns["p10"].append(metrics.precision_at_k(ranked, 10))
        columns["r10"].append(_defined(metrics.recall_at_k(ranked, 10, n_relevant)))
        columns["hit1"].append(metrics.hit_at_k(ranked, 1))
        # N-S counts the query itself, which an image searching its own index finds first.
        ns.append(metrics.ns_score(np.concatenate(([True], ranked))) if dataset.has_ns else np.nan)
        curve = metrics.interpolated_precision(ranked, n_relevant)
        if curve is not None:
            curves.append(curve)
    pr = np.mean(curves, axis=0) if curves else np.zeros(len(metrics.RECALL_LEVELS))
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    return QueryMetrics(
        ap=arrays["ap"],
        p1=arrays["p1"],
        p5=arrays["p5"],
        p10=arrays["p10"],
        r10=arrays["r10"],
        hit1=arrays["hit1"],
        ns=np.asarray(ns, dtype=np.float64),
        pr_curve=tuple(float(x) for x in pr),
    )


def _defined(value: float | None) -> float:
    return np.nan if value is None else value


__all__ = ["METRIC_NAMES", "QueryMetrics", "score_orders"]
