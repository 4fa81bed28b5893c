"""Vector indexes: exact search is the reference every approximate index is measured against."""

from lookalike.indexes.base import VectorIndex
from lookalike.indexes.exact import ExactIndex

__all__ = ["ExactIndex", "VectorIndex"]
