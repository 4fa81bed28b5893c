"""lookalike: reverse image search. Index a folder of images, query it with an image.

Example:
    >>> from lookalike import SearchEngine
    >>> with SearchEngine.open_or_create("photos.idx") as engine:  # doctest: +SKIP
    ...     engine.index_folder("photos/")
    ...     for match in engine.search(["query.jpg"], k=5)[0].matches:
    ...         print(match.rank, match.score, match.path)
"""

from lookalike.embedders.base import EmbedderSpec
from lookalike.engine import IndexInfo, SearchEngine
from lookalike.errors import (
    EmbedderMismatchError,
    ImageError,
    IndexDirectoryError,
    IndexFormatError,
    IndexLockedError,
    InvalidInputError,
    LookalikeError,
    ModelError,
    NotAnIndexError,
    UnknownImageError,
)
from lookalike.filters import NumericRange, SearchFilter
from lookalike.index_options import IndexOptions, IndexProgress, IndexReport, SkippedFile
from lookalike.input_spec import InputSpec
from lookalike.matches import Match, SearchResult
from lookalike.region import Box, Region
from lookalike.version import __version__

__all__ = [
    "Box",
    "EmbedderMismatchError",
    "EmbedderSpec",
    "ImageError",
    "IndexDirectoryError",
    "IndexFormatError",
    "IndexInfo",
    "IndexLockedError",
    "IndexOptions",
    "IndexProgress",
    "IndexReport",
    "InputSpec",
    "InvalidInputError",
    "LookalikeError",
    "Match",
    "ModelError",
    "NotAnIndexError",
    "NumericRange",
    "Region",
    "SearchEngine",
    "SearchFilter",
    "SearchResult",
    "SkippedFile",
    "UnknownImageError",
    "__version__",
]
