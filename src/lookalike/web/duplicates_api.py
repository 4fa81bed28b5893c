"""REST routes of the duplicates view under /api/duplicates: the groups with their proposed
keepers, the plan to download, and "not duplicates" decisions (a write: --allow-writes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lookalike.duplicates.plan import Plan, PlanFile
from lookalike.duplicates.report import DuplicateReport, TieredGroup
from lookalike.web.api import ReadOnlyError
from lookalike.web.schemas import (
    DismissedOut,
    DuplicateGroupOut,
    DuplicateMemberOut,
    DuplicatePairOut,
    DuplicatesOut,
    NotDuplicatesIn,
    PlanIn,
)
from lookalike.web.service import SearchService

duplicates_router = APIRouter(prefix="/api/duplicates")

PLAN_FILE_NAME = "duplicates-plan.json"

IncludeSimilar = Annotated[
    bool, Query(description="Also group similar shots (bursts, slight changes of viewpoint).")
]
Threshold = Annotated[
    float | None,
    Query(
        gt=-1.0,
        le=1.0,
        description="A cosine similarity from which two images pair, instead of the "
        "calibrated tier thresholds (default).",
    ),
]
KeepRules = Annotated[
    list[str] | None,
    Query(
        alias="keep",
        description="Keep rules in order (repeatable): largest-resolution, largest-file, "
        "oldest-exif-date, newest, prefer-path GLOB, prefer-format LIST. Default: "
        "largest-resolution, largest-file, oldest-exif-date.",
    ),
]


def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _member(
    service: SearchService,
    report: DuplicateReport,
    file: PlanFile,
    tier: str,
    score: float | None,
) -> DuplicateMemberOut:
    record = report.records.get(file.id)
    return DuplicateMemberOut(
        id=file.id,
        path=service.shown(file.path, record.label if record else None),
        thumbnail=f"/api/images/{file.id}/thumbnail",
        size=file.size,
        width=file.width,
        height=file.height,
        format=file.format,
        taken=file.taken,
        tier=tier,
        score=score,
        missing=False,
    )


def _groups(service: SearchService, report: DuplicateReport, plan: Plan) -> list[DuplicateGroupOut]:
    by_member: dict[int, TieredGroup] = {i: g for g in report.groups for i in g.ids}
    groups = []
    for planned in plan.groups:
        scanned = by_member[planned.keep.id]
        members = [_member(service, report, planned.keep, planned.tier.value, None)]
        members += [_member(service, report, o.file, o.tier.value, o.score) for o in planned.others]
        for gone in planned.missing:
            record = report.records.get(gone.id)
            members.append(
                DuplicateMemberOut(
                    id=gone.id,
                    path=service.shown(gone.path, record.label if record else None),
                    thumbnail=f"/api/images/{gone.id}/thumbnail",
                    size=record.size if record else 0,
                    width=None,
                    height=None,
                    format=None,
                    taken=None,
                    tier=planned.tier.value,
                    score=None,
                    missing=True,
                )
            )
        groups.append(
            DuplicateGroupOut(
                tier=planned.tier.value,
                min_score=scanned.min_score,
                keeper=planned.keep.id,
                reason=planned.reason,
                members=members,
                pairs=[
                    DuplicatePairOut(first=p.first, second=p.second, score=p.score, tier=p.tier)
                    for p in scanned.pairs
                ],
            )
        )
    return groups


@duplicates_router.get(
    "", response_model=DuplicatesOut, summary="Duplicate groups with the keeper the rules choose"
)
async def duplicate_groups(
    request: Request,
    include_similar: IncludeSimilar = False,
    keep: KeepRules = None,
    threshold: Threshold = None,
) -> DuplicatesOut:
    service = _service(request)
    report, plan = await run_in_threadpool(
        service.duplicates, keep or [], include_similar=include_similar, threshold=threshold
    )
    return DuplicatesOut(
        images=report.images,
        groups=_groups(service, report, plan),
        rules=[r.text() for r in plan.rules],
        dismissed_pairs=report.dismissed_pairs,
        notes=list(plan.notes),
    )


@duplicates_router.post(
    "/plan",
    summary="The plan file (JSON, for `lookalike duplicates apply`): keepers by the rules, or "
    "those the user chose",
)
async def duplicate_plan(request: Request, body: PlanIn) -> JSONResponse:
    service = _service(request)
    _, plan = await run_in_threadpool(
        service.duplicates,
        body.keep,
        include_similar=body.include_similar,
        keepers=body.keepers,
        threshold=body.threshold,
    )
    return JSONResponse(
        plan.to_json(),
        headers={"Content-Disposition": f'attachment; filename="{PLAN_FILE_NAME}"'},
    )


@duplicates_router.post(
    "/not-duplicates",
    response_model=DismissedOut,
    summary="Mark two images as not duplicates: later scans never pair them (needs --allow-writes)",
)
async def not_duplicates(request: Request, body: NotDuplicatesIn) -> DismissedOut:
    service = _service(request)
    if not service.settings.allow_writes:
        raise ReadOnlyError("mark images as not duplicates")
    await run_in_threadpool(service.dismiss, body.first, body.second)
    return DismissedOut(dismissed=True)
