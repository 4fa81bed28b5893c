"""What a search returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lookalike.region import Box


@dataclass(frozen=True)
class Match:
    """One result: ``score`` is higher-is-more-similar whatever the metric; ``distance`` is
    1 - cosine similarity for cosine indexes and the euclidean distance for euclidean ones;
    ``inliers``: in copy mode, the features a geometric verification found shared with the
    query (None when it was not verified); ``product_id``: in an index made from a product
    feed, the product the image belongs to (its metadata holds the product's other fields)."""

    rank: int
    id: int
    path: str
    score: float
    distance: float
    label: str | None
    metadata: dict[str, object] = field(default_factory=dict)
    inliers: int | None = None
    product_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """The matches of one query, best first."""

    query: str
    matches: tuple[Match, ...]
    #: The region of the query image searched with (None: the whole image).
    box: Box | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "query": self.query,
            "box": self.box.to_json() if self.box is not None else None,
            "matches": [m.to_json() for m in self.matches],
        }
