"""SearchOptions: what one search asks for, whatever the query (image, region, indexed id,
product, vector) and whoever asks (Python, CLI, REST API, evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.errors import InvalidInputError
from lookalike.filters import SearchFilter
from lookalike.rerank_settings import RerankOverride

#: How many of a query's best candidates copy mode verifies, unless told otherwise.
DEFAULT_VERIFY_TOP = 20


@dataclass(frozen=True)
class SearchOptions:
    """``k``: results per query. ``where``: a filter (label, folder, metadata range);
    ``sort_by``: a numeric metadata field to order the k results by. ``verify``: copy mode,
    the best ``verify_top`` candidates checked geometrically and the query's copies put
    first. ``rerank``: re-ranking stages on or off for this search (None: as the index
    records). ``group_by_product``: in an index made from a product feed, each product once,
    by its best image (None: on there). Per-query things (a box, ids to leave out) are not
    options: they go beside them.

    Example:
        >>> SearchOptions(k=5, verify=True).verify_top
        20
    """

    k: int = 10
    where: SearchFilter | None = None
    sort_by: str | None = None
    verify: bool = False
    verify_top: int = DEFAULT_VERIFY_TOP
    rerank: RerankOverride | None = None
    group_by_product: bool | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(f"k must be at least 1, got {self.k}")
        # verify_top only counts in copy mode, and is only checked there.
        if self.verify and self.verify_top < 1:
            raise InvalidInputError(f"verify_top must be at least 1, got {self.verify_top}")


__all__ = ["DEFAULT_VERIFY_TOP", "SearchOptions"]
