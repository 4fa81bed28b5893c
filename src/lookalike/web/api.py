"""REST routes under /api. Every handler is thin: parse, call the service, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from lookalike.catalog_records import ImageRecord
from lookalike.errors import InvalidInputError
from lookalike.explain import Explanation
from lookalike.filters import NumericRange, SearchFilter
from lookalike.matches import Match, SearchResult
from lookalike.region import MIN_BOX_SIDE, Box
from lookalike.rerank_settings import RerankOverride
from lookalike.search_options import DEFAULT_VERIFY_TOP, SearchOptions
from lookalike.web.schemas import (
    BatchSearchOut,
    ExplainOut,
    HealthOut,
    ImageOut,
    InfoOut,
    MatchOut,
    SearchOut,
)
from lookalike.web.service import SearchService

router = APIRouter(prefix="/api")

#: Copy mode costs milliseconds per verified candidate: a request may not ask for more.
MAX_VERIFY_TOP = 100
#: Query images one search request may send (the body's size limit still holds for all).
MAX_FILES = 32

K = Annotated[int | None, Query(ge=1, description="Number of results (default 12).")]
Labels = Annotated[list[str] | None, Query(description="Only these labels (repeatable).")]
Folder = Annotated[str | None, Query(description="Only images under this folder (absolute).")]
Field = Annotated[str | None, Query(description="Numeric metadata field for min/max.")]
Bound = Annotated[float | None, Query()]
Sort = Annotated[str | None, Query(description="Order the k results by this numeric field.")]
Verify = Annotated[
    bool,
    Query(
        description="Copy mode: verify the best candidates geometrically (local features, "
        "mirror-aware) and put edited copies of the query first; matches report inliers."
    ),
]
VerifyTop = Annotated[
    int,
    Query(ge=1, le=MAX_VERIFY_TOP, description="Candidates copy mode verifies."),
]
Expansion = Annotated[
    bool | None, Query(description="Query expansion on or off (default: as the index records).")
]
GroupById = Annotated[
    bool | None,
    Query(
        description="One result per product, by its best image (default: on for an index "
        "made from a product feed)."
    ),
]
Hubness = Annotated[
    bool | None, Query(description="Hubness correction on or off (default: as the index records).")
]
BoxText = Annotated[
    str | None,
    Query(
        alias="box",
        description="Search with this region of the query image only: x0,y0,x1,y1 in pixels "
        "of the image as shown (after its EXIF orientation), top-left then bottom-right corner; "
        f"both sides at least {MIN_BOX_SIDE} pixels.",
    ),
]


def _box(text: str | None) -> Box | None:
    """The ``box`` parameter; absent or empty: the whole image."""
    return None if text is None or not text.strip() else Box.parse(text)


def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _filter(
    labels: list[str] | None,
    folder: str | None,
    field: str | None,
    low: float | None,
    high: float | None,
) -> SearchFilter:
    if (low is not None or high is not None) and not field:
        raise InvalidInputError("min and max need 'field', the metadata field they bound")
    ranges = (
        {field: NumericRange(low, high)} if field and (low is not None or high is not None) else {}
    )
    return SearchFilter(labels=frozenset(labels or []), folder=folder or None, ranges=ranges)


def _k(service: SearchService, k: int | None) -> int:
    value = k or service.settings.default_k
    if value > service.settings.max_k:
        raise InvalidInputError(f"k must be at most {service.settings.max_k}, got {value}")
    return value


def _match(service: SearchService, m: Match) -> MatchOut:
    return MatchOut(
        rank=m.rank,
        id=m.id,
        path=service.shown(m.path, m.label),
        name=Path(m.path).name,
        score=m.score,
        distance=m.distance,
        label=m.label,
        metadata=m.metadata,
        thumbnail_url=f"/api/images/{m.id}/thumbnail",
        image_url=f"/api/images/{m.id}",
        inliers=m.inliers,
        product_id=m.product_id,
    )


def _search_out(
    service: SearchService, result: SearchResult, k: int, seconds: float, query_label: str | None
) -> SearchOut:
    return SearchOut(
        query=service.shown(result.query, query_label),
        k=k,
        took_ms=round(seconds * 1000, 2),
        matches=[_match(service, m) for m in result.matches],
        box=result.box.to_json() if result.box is not None else None,
    )


def _image_out(
    service: SearchService, record: ImageRecord, metadata: dict[str, object]
) -> ImageOut:
    return ImageOut(
        id=record.id,
        path=service.shown(record.path, record.label),
        name=Path(record.path).name,
        label=record.label,
        size=record.size,
        metadata=metadata,
        thumbnail_url=f"/api/images/{record.id}/thumbnail",
        image_url=f"/api/images/{record.id}",
    )


async def _read_upload(service: SearchService, upload: UploadFile) -> bytes:
    limit = service.settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError(limit)
    if not data:
        raise InvalidInputError(f"{upload.filename or 'upload'}: empty file; send an image")
    return data


class UploadTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload is larger than the limit of {limit:,} bytes")
        self.limit = limit


@router.get("/health", response_model=HealthOut)
def health(request: Request) -> HealthOut:
    return HealthOut(status="ok", count=_service(request).count())


@router.get("/info", response_model=InfoOut)
def info(request: Request) -> InfoOut:
    service = _service(request)
    details, labels, fields = service.info()
    return InfoOut.model_validate(
        {
            **details,
            "labels": labels,
            "numeric_fields": fields,
            "read_only": not service.settings.allow_writes,
            "max_upload_bytes": service.settings.max_upload_bytes,
            "explainable": service.explainable(),
        }
    )


@dataclass(frozen=True)
class SearchParams:
    """The query parameters every search route takes, parsed and checked once: the search's
    options, and the box (a per-query thing) beside them."""

    options: SearchOptions
    box: Box | None = None


async def search_params(  # async: it only parses, so it runs on the loop, not a worker thread
    request: Request,
    k: K = None,
    label: Labels = None,
    folder: Folder = None,
    field: Field = None,
    min: Bound = None,
    max: Bound = None,
    sort: Sort = None,
    verify: Verify = False,
    verify_top: VerifyTop = DEFAULT_VERIFY_TOP,
    expansion: Expansion = None,
    hubness: Hubness = None,
    box_text: BoxText = None,
    group_by_id: GroupById = None,
) -> SearchParams:
    where = _filter(label, folder, field, min, max)
    override = None if expansion is None and hubness is None else RerankOverride(expansion, hubness)
    k_checked = _k(_service(request), k)
    options = SearchOptions(k_checked, where, sort, verify, verify_top, override, group_by_id)
    return SearchParams(options, _box(box_text))


Params = Annotated[SearchParams, Depends(search_params)]


@router.post(
    "/search",
    response_model=SearchOut | BatchSearchOut,
    summary="Search by an uploaded image (or several: repeated 'images' fields)",
)
async def search_upload(
    request: Request,
    params: Params,
    image: Annotated[UploadFile | None, File(description="The query image.")] = None,
    images: Annotated[
        list[UploadFile] | None,
        File(
            description=f"Several query images (repeat the field, at most {MAX_FILES}): "
            'the answer is {"results": [...]}, one search answer per image, in order.'
        ),
    ] = None,
) -> SearchOut | BatchSearchOut:
    service = _service(request)
    if (image is None) == (not images):
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "image"),
                    "msg": "send one query image as the multipart field 'image', "
                    "or several as repeated 'images' fields (not both)",
                    "type": "missing",
                }
            ]
        )
    if image is not None:
        data = await _read_upload(service, image)
        result, seconds = await run_in_threadpool(
            service.search_upload, data, params.options, box=params.box
        )
        return _search_out(service, result, params.options.k, seconds, None)
    files = images or []
    if len(files) > MAX_FILES:
        raise InvalidInputError(
            f"images: at most {MAX_FILES} images per request, got {len(files)}; "
            "send the others in another request"
        )
    uploads = [
        (file.filename or f"upload {n + 1}", await _read_upload(service, file))
        for n, file in enumerate(files)
    ]
    results, seconds = await run_in_threadpool(
        service.search_uploads, uploads, params.options, box=params.box
    )
    return BatchSearchOut(
        results=[_search_out(service, r, params.options.k, seconds, None) for r in results],
        took_ms=round(seconds * 1000, 2),
    )


@router.get(
    "/search/{image_id}",
    response_model=SearchOut,
    summary="More like this: search by an indexed image",
)
def search_id(request: Request, image_id: int, params: Params) -> SearchOut:
    service = _service(request)
    result, seconds = service.search_id(image_id, params.options, box=params.box)
    record, _ = service.record(image_id)
    return _search_out(service, result, params.options.k, seconds, record.label)


@router.get(
    "/search/by-key/{product_id}",
    response_model=SearchOut,
    summary="More like this product: search by a product id (an index made from a feed)",
)
def search_product(request: Request, product_id: str, params: Params) -> SearchOut:
    service = _service(request)
    if params.options.verify:
        raise InvalidInputError("verify needs a query image; search by an image id instead")
    result, seconds = service.search_product(product_id, params.options)
    out = _search_out(service, result, params.options.k, seconds, None)
    return out.model_copy(update={"query": product_id})


@router.get("/images/{image_id}", summary="The indexed image file itself")
def image_file(request: Request, image_id: int) -> FileResponse:
    record, _ = _service(request).record(image_id)
    return FileResponse(record.path, filename=Path(record.path).name)


@router.get("/images/{image_id}/thumbnail", summary="A JPEG thumbnail (cached)")
def thumbnail(
    request: Request,
    image_id: int,
    size: Annotated[int, Query(description="128, 256 or 512")] = 256,
) -> FileResponse:
    service = _service(request)
    if size not in service.settings.thumbnail_sizes:
        raise InvalidInputError(
            f"thumbnail size must be one of {list(service.settings.thumbnail_sizes)}, got {size}"
        )
    record, _ = service.record(image_id)
    return FileResponse(
        service.thumbnails.path(record, size),
        media_type="image/jpeg",
        headers={"Cache-Control": "max-age=3600"},
    )


@router.get("/images/{image_id}/info", response_model=ImageOut)
def image_info(request: Request, image_id: int) -> ImageOut:
    service = _service(request)
    return _image_out(service, *service.record(image_id))


@router.post(
    "/images",
    response_model=ImageOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an uploaded image to the index (needs --allow-writes)",
)
async def add_image(request: Request, image: Annotated[UploadFile, File()]) -> ImageOut:
    service = _service(request)
    if not service.settings.allow_writes:
        raise ReadOnlyError()
    data = await _read_upload(service, image)
    image_id = await run_in_threadpool(service.add_upload, data, image.filename or "upload.jpg")
    return _image_out(service, *service.record(image_id))


@router.delete(
    "/images/{image_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an image from the index (needs --allow-writes)",
)
def remove_image(request: Request, image_id: int) -> Response:
    service = _service(request)
    if not service.settings.allow_writes:
        raise ReadOnlyError()
    service.remove(image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ReadOnlyError(Exception):
    def __init__(self, action: str = "add or remove images") -> None:
        super().__init__(f"this server is read-only; start it with --allow-writes to {action}")


ResultId = Annotated[int, Query(description="The indexed image (a result) to explain.")]
Overlays = Annotated[
    bool, Query(description="Also send each image with its heatmap blended on, as PNG data URLs.")
]


def _explain_out(explanation: Explanation, seconds: float) -> ExplainOut:
    return ExplainOut.model_validate({**explanation.to_json(), "took_ms": round(seconds * 1000, 2)})


@router.post(
    "/explain", response_model=ExplainOut, summary="Why a result matches an uploaded query"
)
async def explain_upload(
    request: Request,
    image: Annotated[UploadFile, File(description="The query image.")],
    id: ResultId,
    box: BoxText = None,
    overlays: Overlays = False,
) -> ExplainOut:
    service = _service(request)
    region = _box(box)
    data = await _read_upload(service, image)
    explanation, seconds = await run_in_threadpool(
        service.explain_upload, data, id, box=region, overlays=overlays
    )
    return _explain_out(explanation, seconds)


@router.get("/explain", response_model=ExplainOut, summary="Why one indexed image matches another")
def explain_ids(
    request: Request,
    query_id: Annotated[int, Query(description="The indexed image used as the query.")],
    id: ResultId,
    box: BoxText = None,
    overlays: Overlays = False,
) -> ExplainOut:
    explanation, seconds = _service(request).explain_ids(
        query_id, id, box=_box(box), overlays=overlays
    )
    return _explain_out(explanation, seconds)
