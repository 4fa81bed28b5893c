"""A STAND-IN for the duplicates REST endpoints (their owner builds the real ones: keep rules,
plans, not-duplicates in the catalog). It answers the contract's JSON so the page can be built
and tested: the keeper is a group's smallest id (rules are echoed, not applied), and dismissed
pairs are kept in the catalog's ``not_duplicates`` table and left out of the groups here.
Drop this module (and its line in app.py) when the real endpoints are merged."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.finder import groups_of
from lookalike.duplicates.report import DuplicateOptions, TieredGroup
from lookalike.errors import InvalidInputError
from lookalike.image_facts import read_facts
from lookalike.layout import IndexLayout
from lookalike.web.api import ReadOnlyError
from lookalike.web.service import SearchService

router = APIRouter(prefix="/api")

DEFAULT_RULES = ["largest-resolution", "largest-file", "oldest-exif-date"]
REASON = "smallest id (stand-in: keep rules are not applied yet)"


def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _catalog(service: SearchService) -> Path:
    return IndexLayout(service.settings.index).catalog


def _dismissed(service: SearchService) -> set[tuple[str, str]]:
    db = sqlite3.connect(f"file:{_catalog(service)}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT hash_a, hash_b FROM not_duplicates")
        return {(str(a), str(b)) for a, b in rows}
    except sqlite3.OperationalError:  # an older catalog without the table
        return set()
    finally:
        db.close()


def _groups(
    service: SearchService, include_similar: bool
) -> tuple[list[TieredGroup], dict[int, ImageRecord], int]:
    with service._lock:
        report = service.engine.find_duplicates(DuplicateOptions(include_similar=include_similar))
    dismissed = _dismissed(service)
    records = report.records

    def kept(first: int, second: int) -> bool:
        a, b = sorted((records[first].hash, records[second].hash))
        return (a, b) not in dismissed

    pairs = [p for g in report.groups for p in g.pairs if kept(p.first, p.second)]
    return groups_of(pairs), records, report.images


def _file(service: SearchService, record: ImageRecord) -> dict[str, object]:
    facts = read_facts(record.path)
    return {
        "id": record.id,
        "path": record.path,
        "size": facts.size,
        "mtime_ns": facts.mtime_ns,
        "hash": record.hash,
        "width": facts.width,
        "height": facts.height,
        "format": facts.format,
        "taken": facts.taken,
    }


@router.get("/duplicates", summary="Duplicate groups with a proposed keeper (stand-in)")
def duplicates(
    request: Request,
    include_similar: bool = False,
    keep: Annotated[list[str] | None, Query()] = None,
) -> dict[str, object]:
    service = _service(request)
    groups, records, images = _groups(service, include_similar)
    out = []
    for group in groups:
        keeper = group.ids[0]
        members = []
        for i in group.ids:
            record = records[i]
            facts = _file(service, record)
            pair = next((p for p in group.pairs if {p.first, p.second} == {keeper, i}), None)
            members.append(
                {
                    **facts,
                    "path": service.shown(record.path, record.label),
                    "thumbnail": f"/api/images/{i}/thumbnail",
                    "tier": str(pair.tier if pair else group.tier),
                    "score": pair.score if pair else group.min_score,
                }
            )
        out.append(
            {
                "tier": str(group.tier),
                "min_score": group.min_score,
                "keeper": keeper,
                "reason": REASON,
                "members": members,
                "pairs": [
                    {"first": p.first, "second": p.second, "score": p.score, "tier": str(p.tier)}
                    for p in group.pairs
                ],
            }
        )
    return {"images": images, "groups": out, "rules": keep or DEFAULT_RULES}


class PlanIn(BaseModel):
    keep: list[str] = DEFAULT_RULES
    keepers: list[int] = []
    include_similar: bool = False


@router.post("/duplicates/plan", summary="The plan file for the groups (stand-in)")
def plan(request: Request, body: PlanIn) -> JSONResponse:
    service = _service(request)
    groups, records, _ = _groups(service, body.include_similar)
    chosen = set(body.keepers)
    out = []
    for group in groups:
        picked = [i for i in group.ids if i in chosen]
        keeper = picked[0] if picked else group.ids[0]
        others = []
        for i in group.ids:
            if i == keeper:
                continue
            pair = next((p for p in group.pairs if {p.first, p.second} == {keeper, i}), None)
            others.append(
                {
                    **_file(service, records[i]),
                    "tier": str(pair.tier if pair else group.tier),
                    "score": pair.score if pair else group.min_score,
                }
            )
        out.append(
            {
                "tier": str(group.tier),
                "keep": _file(service, records[keeper]),
                "reason": "chosen by the user" if picked else REASON,
                "others": others,
            }
        )
    document = {
        "format": "lookalike-duplicate-plan",
        "version": 1,
        "index": str(Path(service.settings.index).resolve()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rules": body.keep,
        "groups": out,
    }
    return JSONResponse(
        json.loads(json.dumps(document)),
        headers={"Content-Disposition": 'attachment; filename="duplicates-plan.json"'},
    )


class PairIn(BaseModel):
    first: int
    second: int


@router.post("/duplicates/not-duplicates", summary="Remember a pair is not duplicates (stand-in)")
def not_duplicates(request: Request, body: PairIn) -> dict[str, bool]:
    service = _service(request)
    if not service.settings.allow_writes:
        raise ReadOnlyError()
    if body.first == body.second:
        raise InvalidInputError("first and second: two different image ids, got the same twice")
    first, _ = service.record(body.first)
    second, _ = service.record(body.second)
    a, b = sorted((first.hash, second.hash))
    with service._write_lock, service._writer():
        db = sqlite3.connect(_catalog(service), timeout=30)
        try:
            with db:
                db.execute(
                    "INSERT OR IGNORE INTO not_duplicates VALUES (?, ?, ?)",
                    (a, b, datetime.now(UTC).isoformat(timespec="seconds")),
                )
        finally:
            db.close()
    return {"dismissed": True}
