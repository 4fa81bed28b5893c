"""Which query-time re-ranking stages an index's queries go through, and their parameters.

Recorded in the manifest (so every front end treats a query like its index) and overridable per
search. A manifest written before these settings existed reads as :data:`LEGACY_RERANKING`
(every stage off), so old indexes answer exactly as before whatever the defaults become.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from lookalike.errors import InvalidInputError


@dataclass(frozen=True)
class RerankSettings:
    """``expansion``: alpha query expansion (the query averaged with its ``expansion_n`` best
    results weighted by similarity**``expansion_alpha``, then searched again). ``hubness``:
    CSLS hubness correction (candidates ordered by 2*cos(q, x) - r_x, r_x the mean similarity
    of x to its ``hubness_k`` nearest other images) over a ``shortlist`` of candidates."""

    expansion: bool = False
    hubness: bool = False
    expansion_alpha: float = 3.0
    expansion_n: int = 2
    hubness_k: int = 10
    shortlist: int = 100

    def __post_init__(self) -> None:
        for name, low in (("expansion_n", 1), ("hubness_k", 1), ("shortlist", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(
                    f"reranking.{name} must be an integer of at least {low}, got {value!r}"
                )
        if isinstance(self.expansion_alpha, bool) or not (
            isinstance(self.expansion_alpha, (int, float)) and self.expansion_alpha >= 0
        ):
            raise InvalidInputError(
                f"reranking.expansion_alpha must be a number >= 0, got {self.expansion_alpha!r}"
            )
        for name in ("expansion", "hubness"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"reranking.{name} must be true or false")

    @property
    def any_on(self) -> bool:
        return self.expansion or self.hubness

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RerankSettings:
        """Settings from a manifest's ``reranking`` object; fields it lacks keep the legacy
        (off) value, unknown fields are an error."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"'reranking' must be an object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown reranking setting {unknown[0]!r}")
        return replace(LEGACY_RERANKING, **data)


@dataclass(frozen=True)
class RerankOverride:
    """Per-search choices over the index's settings; None keeps what the index records."""

    expansion: bool | None = None
    hubness: bool | None = None

    def apply(self, settings: RerankSettings) -> RerankSettings:
        changes = {
            name: value
            for name, value in (("expansion", self.expansion), ("hubness", self.hubness))
            if value is not None and value != getattr(settings, name)
        }
        # Most searches ask for what the index already does: then no new settings object
        # and no checks of it, on every search.
        return replace(settings, **changes) if changes else settings


#: What an index without recorded settings (made before they existed) does: nothing.
LEGACY_RERANKING = RerankSettings(expansion=False, hubness=False)

#: What a new index records. Switching a stage on by default is a change of this one line.
DEFAULT_RERANKING = RerankSettings(expansion=False, hubness=False)


__all__ = ["DEFAULT_RERANKING", "LEGACY_RERANKING", "RerankOverride", "RerankSettings"]
