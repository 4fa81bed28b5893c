"""The manifest: what an index directory says about itself (format, embedder, weights, vector
size, metric, index type, query re-ranking settings, vector storage dtype), read from and
written as ``manifest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from lookalike.embedders.base import EmbedderSpec
from lookalike.errors import IndexFormatError, InvalidInputError, NotAnIndexError
from lookalike.rerank_settings import DEFAULT_RERANKING, LEGACY_RERANKING, RerankSettings
from lookalike.vector_codec import VectorDtype, check_vector_dtype

FORMAT_NAME = "lookalike-index"
FORMAT_VERSION = 1

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean")


@dataclass(frozen=True)
class Manifest:
    """What an index directory says about itself."""

    embedder: EmbedderSpec
    weights_digest: str
    dim: int
    metric: Metric
    index_type: str = "auto"
    format_version: int = FORMAT_VERSION
    created: str = ""
    lookalike_version: str = ""
    reranking: RerankSettings = DEFAULT_RERANKING
    #: How segments store vectors (vector_codec.py); written before it existed: float32.
    vector_dtype: VectorDtype = "float32"
    #: Segments keep float32 vectors; the compact ``vector_dtype`` is only what exact search
    #: holds in memory, its best candidates re-scored exactly from the segments.
    keep_float32: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "embedder": self.embedder.to_json(),
            "weights_digest": self.weights_digest,
            "dim": self.dim,
            "metric": self.metric,
            "index_type": self.index_type,
            "created": self.created,
            "lookalike_version": self.lookalike_version,
            "reranking": self.reranking.to_json(),
            "vector_dtype": self.vector_dtype,
            "keep_float32": self.keep_float32,
        }

    def to_bytes(self) -> bytes:
        """The manifest file's contents."""
        return json.dumps(self.to_json(), indent=2).encode() + b"\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexFormatError(
                f"{path}: unreadable manifest ({exc}); the index is damaged"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise NotAnIndexError(
                f"{path.parent}: not a lookalike index ({path.name} does not say format "
                f"'{FORMAT_NAME}')"
            )
        version = data.get("format_version")
        if not isinstance(version, int):
            raise IndexFormatError(f"{path}: 'format_version' missing or not an integer")
        if version > FORMAT_VERSION:
            raise IndexFormatError(
                f"{path.parent}: index format {version} is newer than this lookalike reads "
                f"(up to {FORMAT_VERSION}); upgrade lookalike to open it"
            )
        try:
            metric = data["metric"]
            if metric not in METRICS:
                raise IndexFormatError(f"{path}: unknown metric {metric!r}")
            return cls(
                embedder=EmbedderSpec.from_json(data["embedder"]),
                weights_digest=str(data["weights_digest"]),
                dim=int(data["dim"]),
                metric=cast(Metric, metric),
                index_type=str(data.get("index_type", "exact")),
                format_version=version,
                created=str(data.get("created", "")),
                lookalike_version=str(data.get("lookalike_version", "")),
                reranking=(
                    RerankSettings.from_json(data["reranking"])
                    if "reranking" in data
                    else LEGACY_RERANKING  # written before the settings existed: all off
                ),
                vector_dtype=check_vector_dtype(str(data.get("vector_dtype", "float32"))),
                keep_float32=bool(data.get("keep_float32", False)),
            )
        except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
            raise IndexFormatError(f"{path}: manifest field missing or malformed ({exc})") from exc
