"""Two collections: which images of one (a new card, an import) already exist in another.

Each image of the new index is matched with its nearest image of the old one (the same
embedder made both, so their vectors compare), and the pair is tiered as a duplicate scan would
tier it: identical when the old index holds the same bytes, else whatever the finder says of
the two (nothing: the image is new).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import find_duplicates
from lookalike.duplicates.report import DuplicateOptions, Tier
from lookalike.indexes.exact import ExactIndex

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Side:
    """One collection's vectors (unit length, rows of ``ids``) and catalog records."""

    ids: Ids
    vectors: Vectors
    records: Mapping[int, ImageRecord]


@dataclass(frozen=True)
class AgainstMatch:
    """An image of the new collection, and its copy in the old one (None: it is new)."""

    image: ImageRecord
    match: ImageRecord | None
    score: float | None
    tier: Tier | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.image.id,
            "path": self.image.path,
            "tier": None if self.tier is None else self.tier.value,
            "score": None if self.score is None else round(self.score, 6),
            "match_id": None if self.match is None else self.match.id,
            "match_path": None if self.match is None else self.match.path,
        }


@dataclass(frozen=True)
class AgainstReport:
    """Every image of the new collection (by id), each with its copy in the old one if any."""

    matches: list[AgainstMatch]
    old_images: int

    @property
    def found(self) -> list[AgainstMatch]:
        return [m for m in self.matches if m.tier is not None]

    @property
    def new(self) -> list[AgainstMatch]:
        return [m for m in self.matches if m.tier is None]

    def tier_counts(self) -> dict[str, int]:
        counts = {tier.value: 0 for tier in Tier}
        for match in self.found:
            assert match.tier is not None
            counts[match.tier.value] += 1
        return counts


def find_against(new: Side, old: Side, options: DuplicateOptions) -> AgainstReport:
    """Which images of ``new`` exist in ``old``, each with its best match there and tier."""
    by_hash: dict[str, ImageRecord] = {}
    for record in sorted(old.records.values(), key=lambda r: r.id):
        if record.hash:
            by_hash.setdefault(record.hash, record)
    scores = np.full(len(new.ids), np.nan, dtype=np.float32)
    nearest = np.full(len(new.ids), -1, dtype=np.int64)
    if len(old.ids) and len(new.ids):
        found_scores, found_ids = ExactIndex(old.ids, old.vectors).search(new.vectors, 1)
        scores, nearest = found_scores[:, 0], found_ids[:, 0]
    rows = {int(i): n for n, i in enumerate(old.ids.tolist())}
    matches = []
    for row, image_id in enumerate(new.ids.tolist()):
        image = new.records.get(image_id)
        if image is None:
            continue
        same = by_hash.get(image.hash) if image.hash else None
        if same is not None:
            matches.append(AgainstMatch(image, same, 1.0, Tier.IDENTICAL))
            continue
        other = old.records.get(int(nearest[row]))
        if other is None:
            matches.append(AgainstMatch(image, None, None, None))
            continue
        tier = _pair_tier(
            image, new.vectors[row], other, old.vectors[rows[other.id]], options=options
        )
        if tier is None:
            matches.append(AgainstMatch(image, None, None, None))
        else:
            matches.append(AgainstMatch(image, other, float(scores[row]), tier))
    return AgainstReport(matches, old_images=len(old.ids))


def _pair_tier(
    one: ImageRecord,
    one_vector: Vectors,
    other: ImageRecord,
    other_vector: Vectors,
    *,
    options: DuplicateOptions,
) -> Tier | None:
    """The finder's tier for two images of different indexes (their ids may clash, so they
    are given 0 and 1 for the finder), or None when it does not pair them."""
    ids = np.array([0, 1], dtype=np.int64)
    vectors = np.stack([one_vector, other_vector]).astype(np.float32)
    records = {0: replace(one, id=0), 1: replace(other, id=1)}
    report = find_duplicates(ids, vectors, records, replace(options, k=1, verify=False))
    pairs = [p for g in report.groups for p in g.pairs]
    return pairs[0].tier if pairs else None


__all__ = ["AgainstMatch", "AgainstReport", "Side", "find_against"]
