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


class BatchSearchOut(BaseModel):
    results: list[SearchOut] = Field(description="One answer per uploaded image, in order.")
    took_ms: float


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


class DuplicateMemberOut(BaseModel):
    id: int
    path: str
    thumbnail: str = Field(description="URL of the image's thumbnail.")
    size: int
    width: int | None
    height: int | None
    format: str | None
    taken: str | None = Field(description="EXIF date taken (ISO 8601), if any.")
    tier: str = Field(
        description="Its pair's tier with the keeper (the group's where they are linked only "
        "through others); the keeper's own is the group's."
    )
    score: float | None = Field(description="Its pair's cosine similarity; null for the keeper.")
    missing: bool = Field(
        False, description="The file cannot be read now (gone since indexed): never a keeper."
    )


class DuplicatePairOut(BaseModel):
    first: int
    second: int
    score: float
    tier: str


class DuplicateGroupOut(BaseModel):
    tier: str = Field(description="The weakest tier among the group's pairs.")
    min_score: float
    keeper: int = Field(description="The id the keep rules choose.")
    reason: str
    members: list[DuplicateMemberOut] = Field(description="The keeper first.")
    pairs: list[DuplicatePairOut]


class DuplicatesOut(BaseModel):
    images: int = Field(description="Images scanned.")
    groups: list[DuplicateGroupOut]
    rules: list[str] = Field(description="The keep rules applied, in order.")
    dismissed_pairs: int = Field(0, description="Pairs left out as marked not duplicates.")
    notes: list[str] = Field(default_factory=list, description="Groups left out, and why.")


class PlanIn(BaseModel):
    keep: list[str] = Field(default_factory=list, description="Keep rules, in order.")
    keepers: list[int] = Field(
        default_factory=list, description="Ids the user chose to keep (one per group at most)."
    )
    include_similar: bool = False
    threshold: float | None = Field(
        None, gt=-1.0, le=1.0, description="As GET /api/duplicates' threshold."
    )


class NotDuplicatesIn(BaseModel):
    first: int
    second: int


class DismissedOut(BaseModel):
    dismissed: bool
