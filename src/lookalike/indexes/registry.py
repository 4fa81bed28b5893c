"""Index types by name: what ``--index-type`` accepts, and which structure each one searches.

An index records its type in its manifest; the type decides, from the collection's size,
whether searches want the HNSW graph or exact search. Adding a type is one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from lookalike.errors import InvalidInputError

#: From this many images on, an index of type "auto" searches an HNSW graph.
ANN_THRESHOLD = 100_000

Structure = Literal["exact", "hnsw"]


@dataclass(frozen=True)
class IndexType:
    """A way to choose the search structure. ``graph_from``: the collection size from which
    searches want the HNSW graph (None: never)."""

    name: str
    summary: str
    graph_from: int | None

    def wants_graph(self, count: int) -> bool:
        return self.graph_from is not None and count >= self.graph_from

    def structure(self, count: int, *, graph_saved: bool) -> Structure:
        """The structure searches use: the graph only once one has been built."""
        return "hnsw" if graph_saved and self.wants_graph(count) else "exact"


INDEX_TYPES: Mapping[str, IndexType] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            IndexType(
                "auto", f"exact below {ANN_THRESHOLD:,} images, hnsw from there", ANN_THRESHOLD
            ),
            IndexType("exact", "exact search over every vector", None),
            IndexType("hnsw", "an approximate HNSW graph, its recall measured at each build", 0),
        )
    }
)


def resolve_index_type(name: str) -> IndexType:
    """The registered index type called ``name``."""
    try:
        return INDEX_TYPES[name]
    except KeyError:
        raise InvalidInputError(
            f"index type must be one of {', '.join(INDEX_TYPES)}, got {name!r}"
        ) from None


__all__ = ["ANN_THRESHOLD", "INDEX_TYPES", "IndexType", "Structure", "resolve_index_type"]
