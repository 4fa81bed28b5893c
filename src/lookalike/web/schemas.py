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
    box: list[float] | None = Field(
        None,
        description="The region of the query image searched with, [x0, y0, x1, y1] in pixels "
        "of the image as shown; null for the whole image.",
    )


class InfoOut(BaseModel):
    count: int
    embedder: str
    dim: int
    metric: str
    index_type: str
    vector_dtype: str = Field(
        "float32", description="How the index stores vectors: float32, float16 or int8."
    )
    keep_float32: bool = Field(
        False, description="Whether float32 vectors are kept beside compact ones, to re-score."
    )
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
    explainable: bool = Field(
        False, description="Whether /api/explain works here (the embedder has a feature map)."
    )


class ExplainOut(BaseModel):
    query_heatmap: list[list[float]] = Field(
        description="How much each part of the query agrees with the result: rows from the "
        "top, covering the whole query image (zeros outside the box), maximum 1."
    )
    result_heatmap: list[list[float]] = Field(
        description="The same for the result image, covering all of it."
    )
    query_size: list[int] = Field(description="[width, height] of the query as shown.")
    result_size: list[int] = Field(description="[width, height] of the result as shown.")
    score: float = Field(description="Cosine similarity of the two descriptors explained.")
    took_ms: float
    box: list[float] | None = Field(None, description="The query region explained, if any.")
    query_overlay: str | None = Field(
        None, description="With overlays=true: the query with its heatmap, a PNG data URL."
    )
    result_overlay: str | None = Field(
        None, description="With overlays=true: the result with its heatmap, a PNG data URL."
    )


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
