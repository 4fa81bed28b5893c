"""What a duplicate scan finds: pairs labelled with a tier, groups of them, and the options
that asked for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from lookalike.catalog_records import ImageRecord


class Tier(StrEnum):
    """How two images are the same, strongest first."""

    IDENTICAL = "identical"  # the same bytes
    SAME_PICTURE = "same-picture"  # resized, recompressed, re-encoded
    EDITED_COPY = "edited-copy"  # crop, rotation, colour, text overlay, mirror
    SIMILAR_SHOT = "similar-shot"  # the same scene: bursts, a slight change of viewpoint

    @property
    def rank(self) -> int:
        """0 for the strongest tier (identical), 3 for the weakest (similar shot)."""
        return list(Tier).index(self)


@dataclass(frozen=True)
class DuplicateOptions:
    """What a duplicate scan asks for. ``threshold`` None: the calibrated tier thresholds.
    ``verify``: every edited-copy pair confirmed geometrically. ``verify_undecided``: the few
    pairs no tier decides but that stand out somewhat from their neighbourhoods are checked
    geometrically (strictly) and linked when the files are the same picture."""

    k: int = 10
    include_similar: bool = False
    verify: bool = False
    threshold: float | None = None
    verify_undecided: bool = True


@dataclass(frozen=True)
class DuplicatePair:
    """Two images (first < second) found to be duplicates, with their cosine similarity."""

    first: int
    second: int
    score: float
    tier: Tier


@dataclass(frozen=True)
class TieredGroup:
    """Images linked by duplicate pairs: ids ascending, the pairs that link them, and the
    weakest tier among those pairs (the group's tier)."""

    ids: tuple[int, ...]
    pairs: tuple[DuplicatePair, ...]
    tier: Tier

    @property
    def min_score(self) -> float:
        return min((p.score for p in self.pairs), default=1.0)


@dataclass(frozen=True)
class DuplicateReport:
    """Groups (largest first), the catalog records of their images, and counts."""

    groups: list[TieredGroup]
    records: dict[int, ImageRecord]
    images: int
    options: DuplicateOptions = field(default_factory=DuplicateOptions)
    #: Pairs left out because a user said they are not duplicates.
    dismissed_pairs: int = 0
    verified_pairs: int = 0
    dropped_pairs: int = 0
    #: Undecided pairs checked geometrically, and how many of them were linked.
    undecided_pairs: int = 0
    settled_pairs: int = 0
