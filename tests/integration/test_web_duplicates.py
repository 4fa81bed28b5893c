"""The duplicates endpoints over real HTTP (a `lookalike serve` process) on a small archive of
real photos: groups with keepers and reasons, the plan download, not-duplicate decisions."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lookalike import SearchEngine
from lookalike.duplicates.plan import Plan
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.archive import make_archive
from tests.conftest import FAST_EMBEDDER
from tests.helpers import Server

#: Raw pixels of any two photos are alike: only near-exact copies pass this.
THRESHOLD = "threshold=0.98"


@pytest.fixture(scope="module")
def archive(small_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("web-dups")
    folder = make_archive(small_photos, root)
    index = root / "archive.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(folder)
    return folder, index


@pytest.fixture(scope="module")
def server(archive: tuple[Path, Path]) -> Iterator[Server]:
    running = Server(archive[1], "--allow-writes")
    try:
        yield running
    finally:
        running.stop()


def _get(server: Server, path: str) -> Any:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=60) as response:
        return json.loads(response.read())


def _post(server: Server, path: str, body: object) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def _names(group: dict[str, Any]) -> list[str]:
    return [m["path"] for m in group["members"]]


def test_groups_plan_and_not_duplicates(server: Server, archive: tuple[Path, Path]) -> None:
    folder, _ = archive
    body = _get(server, f"/api/duplicates?{THRESHOLD}")
    assert body["images"] == 6
    assert body["rules"] == ["largest-resolution", "largest-file", "oldest-exif-date"]
    groups = {frozenset(_names(g)): g for g in body["groups"]}
    # Paths are shown relative to the indexed folder, as every answer shows them.
    chelsea = groups[
        frozenset({"backup/chelsea.jpg", "originals/chelsea.jpg", "phone/chelsea-small.jpg"})
    ]
    coffee = groups[frozenset({"originals/coffee.jpg", "backup/coffee.png"})]
    assert len(groups) == 2
    keeper = chelsea["members"][0]
    assert keeper["id"] == chelsea["keeper"] and keeper["path"] == "backup/chelsea.jpg"
    assert chelsea["reason"].startswith("largest resolution: ")
    assert keeper["score"] is None and keeper["width"] > 0 and keeper["taken"]
    by_path = {m["path"]: m for m in chelsea["members"]}
    assert by_path["originals/chelsea.jpg"]["tier"] == "identical"
    assert by_path["phone/chelsea-small.jpg"]["width"] == keeper["width"] // 2
    assert {(p["first"], p["second"]) for p in chelsea["pairs"]} >= {
        tuple(sorted((keeper["id"], by_path["originals/chelsea.jpg"]["id"])))
    }
    assert chelsea["min_score"] == min(p["score"] for p in chelsea["pairs"])
    with urllib.request.urlopen(f"{server.url}{keeper['thumbnail']}", timeout=30) as thumb:
        assert thumb.headers["Content-Type"] == "image/jpeg"

    rules = _get(server, f"/api/duplicates?{THRESHOLD}&keep=prefer-path%20*/phone/*&keep=newest")
    assert rules["rules"] == ["prefer-path */phone/*", "newest"]
    picked = next(g for g in rules["groups"] if "phone/chelsea-small.jpg" in _names(g))
    assert picked["members"][0]["path"] == "phone/chelsea-small.jpg"
    assert picked["reason"] == "prefer path */phone/*"

    # The plan: the user's keeper in one group, the rules in the other.
    chosen = by_path["originals/chelsea.jpg"]["id"]
    status, plan, headers = _post(
        server,
        "/api/duplicates/plan",
        {"keep": ["prefer-format jpeg"], "keepers": [chosen], "threshold": 0.98},
    )
    assert status == 200, plan
    assert headers["content-disposition"] == 'attachment; filename="duplicates-plan.json"'
    parsed = Plan.from_json(plan)
    assert [r.text() for r in parsed.rules] == ["prefer-format jpeg"]
    keeps = {Path(g.keep.path).relative_to(folder).as_posix(): g.reason for g in parsed.groups}
    assert keeps == {
        "originals/chelsea.jpg": "chosen by the user",
        "originals/coffee.jpg": "prefer format jpeg: jpeg against png",
    }
    status, error, _ = _post(server, "/api/duplicates/plan", {"keep": ["biggest"]})
    assert status == 400 and "valid rules: largest-resolution" in error["detail"]

    # Not duplicates: the coffee pair is gone from the next scan, and stays gone.
    first, second = (m["id"] for m in coffee["members"])
    status, answer, _ = _post(
        server, "/api/duplicates/not-duplicates", {"first": first, "second": second}
    )
    assert (status, answer) == (200, {"dismissed": True})
    after = _get(server, f"/api/duplicates?{THRESHOLD}")
    assert [frozenset(_names(g)) for g in after["groups"]] == [frozenset(_names(chelsea))]
    assert after["dismissed_pairs"] == 1
    twin = by_path["originals/chelsea.jpg"]["id"]
    status, error, _ = _post(
        server, "/api/duplicates/not-duplicates", {"first": keeper["id"], "second": twin}
    )
    assert status == 400 and "same content" in error["detail"]
    status, error, _ = _post(
        server, "/api/duplicates/not-duplicates", {"first": keeper["id"], "second": 999}
    )
    assert status == 404


def test_not_duplicates_needs_allow_writes(archive: tuple[Path, Path]) -> None:
    settings = ServeSettings(index=archive[1])
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        groups = client.get(f"/api/duplicates?{THRESHOLD}").json()["groups"]
        first, second = groups[0]["members"][0]["id"], groups[0]["members"][1]["id"]
        response = client.post(
            "/api/duplicates/not-duplicates", json={"first": first, "second": second}
        )
        assert response.status_code == 403
        assert "--allow-writes" in response.json()["detail"]
        assert client.get("/api/duplicates?keep=prefer-path").status_code == 400
