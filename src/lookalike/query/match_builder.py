"""The last stage: candidate ids become ``Match``es, with their catalog record, metadata and
distance, the excluded image left out, cut to k and ordered (by score, or a metadata field)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from lookalike.catalog import PRODUCT_FIELD_SETTING, Catalog
from lookalike.filters import sort_key
from lookalike.indexes.base import FloatArray, IdArray, distance_from_score
from lookalike.matches import Match
from lookalike.query.products import ProductGrouping, product_of


class MatchBuilder:
    """Looks candidates up in the catalog, once per batch."""

    def __init__(
        self, catalog: Catalog, metric: str, product_field: Callable[[], str | None] | None = None
    ) -> None:
        self._catalog = catalog
        self._metric = metric
        #: Where the product field is read (a snapshot's cached copy; default: the catalog).
        self._product_field = product_field or (
            lambda: self._catalog.setting(PRODUCT_FIELD_SETTING)
        )

    def __call__(
        self,
        scores: FloatArray,
        ids: IdArray,
        *,
        k: int,
        sort_by: str | None = None,
        exclude: Sequence[int | None] | None = None,
        inliers: Sequence[Mapping[int, int]] | None = None,
        products: ProductGrouping | None = None,
    ) -> list[tuple[Match, ...]]:
        """One tuple of at most ``k`` matches per row, ranked from 1. Ids the catalog no longer
        holds (removed since a graph or Milvus was synced) are skipped. ``inliers``: per row,
        the geometric verification's count for each candidate it checked. ``products``: one
        match per product, and a product left out, before the cut to k."""
        wanted = sorted({i for i in ids.ravel().tolist() if i >= 0})
        records, metadata = self._catalog.found(wanted)
        skip = list(exclude) if exclude is not None else [None] * len(ids)
        checked: Sequence[Mapping[int, int]] = inliers if inliers is not None else [{}] * len(ids)
        field = self.product_field()
        results = []
        rows = zip(scores, ids, skip, checked, strict=True)
        for row, (row_scores, row_ids, excluded, counts) in enumerate(rows):
            kept = [
                (score, image_id)
                for score, image_id in zip(row_scores.tolist(), row_ids.tolist(), strict=True)
                if image_id >= 0 and image_id in records and image_id != excluded
            ]
            if products is None and sort_by is None:
                kept = kept[:k]  # ranked as they come: no Match is made and then dropped

            def match(
                rank: int, score: float, image_id: int, counts: Mapping[int, int] = counts
            ) -> Match:
                fields = metadata.get(image_id, {})
                return Match(
                    rank=rank,
                    id=image_id,
                    path=records[image_id].path,
                    score=score,
                    distance=distance_from_score(self._metric, score),
                    label=records[image_id].label,
                    metadata=fields,
                    inliers=counts.get(image_id),
                    product_id=product_of(field, fields),
                )

            if products is None and sort_by is None:
                results.append(tuple(match(r, *pair) for r, pair in enumerate(kept, start=1)))
                continue
            matches = [match(0, *pair) for pair in kept]
            if products is not None:
                matches = products.apply(matches, row)
            matches = matches[:k]
            if sort_by is not None:
                matches.sort(key=lambda m: sort_key(sort_by, m.metadata))
            results.append(tuple(replace(m, rank=r) for r, m in enumerate(matches, start=1)))
        return results

    def product_field(self) -> str | None:
        """The metadata field naming each image's product (None: not an index of a feed)."""
        return self._product_field()


__all__ = ["MatchBuilder"]
