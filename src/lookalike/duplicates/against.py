"""Two collections: which images of one (a new card, an import) already exist in another.

Each image of the new index is matched with its nearest image of the old one (the same
embedder made both, so their vectors compare), and the pair is tiered as a duplicate scan would
tier it: identical when the old index holds the same bytes, else whatever the finder says of
the two (nothing: the image is new).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import PerceptualLookup, find_duplicates
from lookalike.duplicates.report import DuplicateOptions, Tier
from lookalike.indexes.exact import ExactIndex

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Side:
    """One collection's vectors (unit length, rows of ``ids``), catalog records, and its
    images' perceptual hashes (None: pairs are tiered by the embedding alone)."""

    ids: Ids
    vectors: Vectors
    records: Mapping[int, ImageRecord]
    phashes: PerceptualLookup | None = None


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
            (image, new.vectors[row], new.phashes),
            (other, old.vectors[rows[other.id]], old.phashes),
            options=options,
        )
        if tier is None:
            matches.append(AgainstMatch(image, None, None, None))
        else:
            matches.append(AgainstMatch(image, other, float(scores[row]), tier))
    return AgainstReport(matches, old_images=len(old.ids))


_Image = tuple[ImageRecord, Vectors, PerceptualLookup | None]


def _pair_tier(one: _Image, other: _Image, *, options: DuplicateOptions) -> Tier | None:
    """The finder's tier for two images of different indexes (their ids may clash, so they
    are given 0 and 1 for the finder), or None when it does not pair them."""
    ids = np.array([0, 1], dtype=np.int64)
    vectors = np.stack([one[1], other[1]]).astype(np.float32)
    records = {0: replace(one[0], id=0), 1: replace(other[0], id=1)}
    hashes: dict[int, int] = {}
    for new_id, (record, _, lookup) in enumerate((one, other)):
        if lookup is not None:
            value = lookup([record.id]).get(record.id)
            if value is not None:
                hashes[new_id] = value

    def phashes(wanted: Sequence[int]) -> Mapping[int, int]:
        return {i: hashes[i] for i in wanted if i in hashes}

    report = find_duplicates(
        ids, vectors, records, replace(options, k=1, verify=False), phashes=phashes
    )
    pairs = [p for g in report.groups for p in g.pairs]
    return pairs[0].tier if pairs else None


__all__ = ["AgainstMatch", "AgainstReport", "Side", "find_against"]
