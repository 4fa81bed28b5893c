"""The JSON shapes of the REST API (they document themselves at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MatchOut(BaseModel):
    rank: int
    id: int = Field(description="Image id: use it for /api/images/{id} and more-like-this.")
    path: str
    name: str = Field(description="File name.")
    score: float = Field(description="Higher is more similar, whatever the metric.")
    distance: float
    label: str | None
    metadata: dict[str, object]
    thumbnail_url: str
    image_url: str
    inliers: int | None = Field(
        None,
        description="Copy mode (verify=true): local features shared with the query under one "
        "geometric transform; null when this match was not verified.",
    )
    product_id: str | None = Field(
        None,
        description="In an index made from a product feed: the image's product (its metadata "
        "holds the product's other columns and image_url).",
    )


class SearchOut(BaseModel):
    query: str
    k: int
    took_ms: float
    matches: list[MatchOut]


class InfoOut(BaseModel):
    count: int
    embedder: str
    dim: int
    metric: str
    index_type: str
    reranking: dict[str, object] = Field(
        default_factory=dict, description="The query re-ranking stages searches use by default."
    )
    format_version: int
    size_bytes: int
    created: str
    labels: dict[str, int]
    numeric_fields: list[str]
    product_field: str | None = Field(
        None, description="The metadata field naming products (an index made from a feed)."
    )
    read_only: bool
    max_upload_bytes: int


class HealthOut(BaseModel):
    status: str
    count: int


class ImageOut(BaseModel):
    id: int
    path: str
    name: str
    label: str | None
    size: int
    metadata: dict[str, object]
    thumbnail_url: str
    image_url: str


class ErrorOut(BaseModel):
    error: str
    detail: str
