"""Index options and reports: how to index (``IndexOptions``, checked when made), the progress
events a run sends, and what one run did (``IndexReport``, ``SkippedFile``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lookalike.errors import InvalidInputError
from lookalike.imaging import DEFAULT_MAX_PIXELS
from lookalike.indexes.registry import resolve_index_type


@dataclass(frozen=True)
class IndexProgress:
    """A progress event: ``phase`` is 'scan', 'hash', 'embed', 'compact' or 'ann'; feeds
    also send 'download' (images answered) and 'failed' (images that failed so far)."""

    phase: str
    done: int
    total: int


ProgressCallback = Callable[[IndexProgress], None]


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


#: (field, smallest allowed value) of the numeric options; None always means "the default".
_OPTION_MINIMUMS = (
    ("workers", 0),
    ("batch_size", 1),
    ("commit_every", 1),
    ("max_pixels", 1),
    ("pca_dim", 0),
    ("rerank", 0),
)


@dataclass(frozen=True)
class IndexOptions:
    """How to index. ``index_type`` (auto, exact, hnsw), and for hnsw ``pca_dim`` (0: none),
    ``whiten`` and ``rerank`` (graph candidates re-scored with the full vectors), change the
    search structure kept beside the vectors; ``expansion`` and ``hubness`` switch the index's
    query re-ranking stages (recorded in its manifest); None keeps what the index has."""

    workers: int | None = None
    batch_size: int = 32
    commit_every: int = 512
    max_pixels: int = DEFAULT_MAX_PIXELS
    index_type: str | None = None
    pca_dim: int | None = None
    whiten: bool | None = None
    rerank: int | None = None
    ray_address: str | None = None
    expansion: bool | None = None
    hubness: bool | None = None

    def __post_init__(self) -> None:
        for name, low in _OPTION_MINIMUMS:
            value = getattr(self, name)
            if value is not None and value < low:
                fix = "0 (none) or more" if low == 0 else f"at least {low}"
                raise InvalidInputError(f"IndexOptions.{name} must be {fix}, got {value!r}")
        if self.index_type is not None:
            try:
                resolve_index_type(self.index_type)
            except InvalidInputError as exc:
                raise InvalidInputError(f"IndexOptions.index_type: {exc}") from None


@dataclass(frozen=True)
class IndexReport:
    """What one run of indexing did."""

    added: int
    updated: int
    renamed: int
    unchanged: int
    removed: int
    skipped: tuple[SkippedFile, ...]
    embedded: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0
