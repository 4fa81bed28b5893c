"""/api/explain and `lookalike search --explain` on real photos: both endpoints, the cached
query, overlays, and the refusals (an embedder without a feature map, a bad id, a bad box)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.explain.explainer import upload_key
from lookalike.web.app import create_app
from lookalike.web.service import SearchService
from lookalike.web.settings import ServeSettings
from tests.helpers import run_cli

LOCAL = "http://127.0.0.1"


def serve(index: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeSettings(index=index)), base_url=LOCAL) as client:
        yield client


@pytest.fixture(scope="module")
def client(gallery_index: Path) -> Iterator[TestClient]:
    yield from serve(gallery_index)


@pytest.fixture(scope="module")
def fast_client(fast_gallery_index: Path) -> Iterator[TestClient]:
    yield from serve(fast_gallery_index)


def ids_by_name(client: TestClient, gallery: Path) -> dict[str, int]:
    """The ids of the originals, found by searching with their own files."""
    found = {}
    for path in sorted((gallery / "originals").glob("*.jpg")):
        answer = client.post("/api/search", files={"image": path.read_bytes()}, params={"k": 1})
        found[path.stem] = int(answer.json()["matches"][0]["id"])
    return found


def overlay(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def check_heatmap(rows: list[list[float]], size: list[int]) -> None:
    width, height = size
    assert max(len(rows), len(rows[0])) == 64
    assert all(len(row) == len(rows[0]) for row in rows)
    assert len(rows[0]) / len(rows) == pytest.approx(width / height, rel=0.05)
    values = [v for row in rows for v in row]
    assert min(values) >= 0 and max(values) == 1.0


@pytest.mark.heavy
def test_explain_an_upload_and_two_indexed_images(client: TestClient, gallery: Path) -> None:
    assert client.get("/api/info").json()["explainable"] is True
    ids = ids_by_name(client, gallery)
    chelsea = Image.open(gallery / "originals" / "chelsea.jpg")
    buffer = io.BytesIO()
    chelsea.crop((100, 50, 400, 250)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()

    answer = client.post(
        "/api/explain",
        params={"id": ids["chelsea"], "overlays": "true"},
        files={"image": ("crop.jpg", data, "image/jpeg")},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["query_size"] == [300, 200] and body["result_size"] == list(chelsea.size)
    check_heatmap(body["query_heatmap"], body["query_size"])
    check_heatmap(body["result_heatmap"], body["result_size"])
    assert 0.3 < body["score"] <= 1.0 and body["took_ms"] > 0 and body["box"] is None
    assert overlay(body["result_overlay"]).size == (451, 300)
    assert max(overlay(body["query_overlay"]).size) <= 512
    service: SearchService = client.app.state.service  # type: ignore[attr-defined]
    assert service.engine.explainer.cached(upload_key(data, None))

    # The next result of the same query: no overlays asked, none sent; the query is cached.
    other = client.post(
        "/api/explain", params={"id": ids["rocket"]}, files={"image": ("crop.jpg", data)}
    ).json()
    assert other["query_overlay"] is None and other["result_overlay"] is None
    assert other["score"] < body["score"]

    boxed = client.post(
        "/api/explain",
        params={"id": ids["chelsea"], "box": "0,0,150,200"},
        files={"image": ("crop.jpg", data)},
    ).json()
    assert boxed["box"] == [0, 0, 150, 200]
    right_half = [v for row in boxed["query_heatmap"] for v in row[len(row) // 2 + 1 :]]
    assert max(right_half) == 0.0

    pair = client.get(
        "/api/explain",
        params={"query_id": ids["coffee"], "id": ids["coffee"], "box": "100,100,400,300"},
    )
    assert pair.status_code == 200, pair.text
    assert pair.json()["box"] == [100, 100, 400, 300]
    check_heatmap(pair.json()["query_heatmap"], pair.json()["query_size"])


@pytest.mark.heavy
def test_explain_refuses_bad_ids_and_boxes(client: TestClient, gallery: Path) -> None:
    data = (gallery / "originals" / "coffee.jpg").read_bytes()
    missing = client.post("/api/explain", params={"id": 999_999}, files={"image": data})
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    outside = client.post(
        "/api/explain", params={"id": 1, "box": "0,0,5000,100"}, files={"image": data}
    )
    assert outside.status_code == 400
    assert "not inside the image, which is 600x400" in outside.json()["detail"]
    garbled = client.get("/api/explain", params={"query_id": 1, "id": 2, "box": "1,2,3"})
    assert garbled.status_code == 400 and "x0,y0,x1,y1" in garbled.json()["detail"]


def test_an_index_without_feature_maps_is_not_explainable(
    fast_client: TestClient, gallery: Path
) -> None:
    assert fast_client.get("/api/info").json()["explainable"] is False
    data = (gallery / "originals" / "coffee.jpg").read_bytes()
    for answer in (
        fast_client.post("/api/explain", params={"id": 1}, files={"image": data}),
        fast_client.get("/api/explain", params={"query_id": 1, "id": 2}),
    ):
        assert answer.status_code == 400
        body = answer.json()
        assert body["error"] == "NotExplainableError"
        assert "pixels" in body["detail"] and "efficientnet-lite0" in body["detail"]


@pytest.mark.heavy
def test_search_explain_writes_overlays(gallery_index: Path, gallery: Path, tmp_path: Path) -> None:
    query = gallery / "originals" / "rocket.jpg"
    done = run_cli("search", query, "--index", gallery_index, "-k", "2", "--explain", tmp_path)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "rocket-rank1-query.png",
        "rocket-rank1-result.png",
        "rocket-rank2-query.png",
        "rocket-rank2-result.png",
    ]
    with Image.open(tmp_path / "rocket-rank1-result.png") as shown:
        assert shown.format == "PNG" and shown.size == (512, 342)


def test_search_explain_refuses_an_index_without_feature_maps(
    fast_gallery_index: Path, gallery: Path, tmp_path: Path
) -> None:
    query = gallery / "originals" / "rocket.jpg"
    target = tmp_path / "why"
    done = run_cli("search", query, "--index", fast_gallery_index, "--explain", target)
    assert done.returncode == 2
    assert "pixels" in done.stderr and "explain" in done.stderr
    assert not target.exists()
