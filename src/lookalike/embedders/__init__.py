"""Embedders, chosen by name through :mod:`lookalike.embedders.registry`. Heavy libraries load
only when an embedder is built."""

from __future__ import annotations

from lookalike.embedders.base import Embedder, EmbedderSpec
from lookalike.embedders.registry import (
    ALIASES,
    DEFAULT_EMBEDDER,
    EMBEDDERS,
    EmbedderEntry,
    create_embedder,
    resolve_spec,
)
from lookalike.input_spec import InputSpec

__all__ = [
    "ALIASES",
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "Embedder",
    "EmbedderEntry",
    "EmbedderSpec",
    "InputSpec",
    "create_embedder",
    "resolve_spec",
]
