"""The REST API through an in-process client, on a real index of real photos."""

from __future__ import annotations

import csv
import io
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import SearchEngine
from lookalike.evaluation.copies import CopySet
from lookalike.layout import IndexLayout
from lookalike.metadata import read_metadata_csv
from lookalike.web.app import create_app
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER

#: TestClient sends Host: testserver by default, which the Host allow-list refuses.
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def shop(copy_set: CopySet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the 8 originals and their copies in two labelled folders, with prices."""
    root = tmp_path_factory.mktemp("shop")
    photos = root / "photos"
    (photos / "originals").mkdir(parents=True)
    (photos / "copies").mkdir()
    for path in copy_set.originals:
        shutil.copy(path, photos / "originals" / path.name)
    for pair in copy_set.copies:
        shutil.copy(pair.copy, photos / "copies" / pair.copy.name)
    table = root / "products.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "title", "price"])
        for i, path in enumerate(sorted((photos / "copies").iterdir())):
            writer.writerow([f"copies/{path.name}", f"item {i}", 100 - i])
    index = root / "shop.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos)
        matched, unmatched = engine.set_metadata(read_metadata_csv(table, photos))
    assert (matched, unmatched) == (72, [])
    return index


@pytest.fixture(scope="module")
def client(shop: Path) -> Iterator[TestClient]:
    settings = ServeSettings(index=shop, max_upload_bytes=2 * 1024 * 1024)
    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client


def _upload(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (path.name, path.read_bytes(), "image/jpeg")}


def test_health_and_info(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "count": 80}
    info = client.get("/api/info").json()
    assert info["count"] == 80 and info["embedder"] == FAST_EMBEDDER
    assert info["labels"] == {"copies": 72, "originals": 8}
    assert info["numeric_fields"] == ["price"]
    assert info["read_only"] is True


def test_search_by_upload_finds_the_original(client: TestClient, copy_set: CopySet) -> None:
    pair = next(p for p in copy_set.copies if p.edit == "colour")
    response = client.post("/api/search?k=5&label=originals", files=_upload(pair.copy))
    assert response.status_code == 200
    body = response.json()
    assert body["k"] == 5 and body["took_ms"] > 0
    top = body["matches"][0]
    assert top["name"] == pair.original.name and top["rank"] == 1 and top["label"] == "originals"
    assert [m["rank"] for m in body["matches"]] == [1, 2, 3, 4, 5]
    scores = [m["score"] for m in body["matches"]]
    assert scores == sorted(scores, reverse=True)
    assert top["thumbnail_url"] == f"/api/images/{top['id']}/thumbnail"


def test_filter_and_sort_by_price(client: TestClient, copy_set: CopySet) -> None:
    query = copy_set.originals[0]
    cheap = client.post("/api/search?k=10&field=price&max=60&sort=price", files=_upload(query))
    matches = cheap.json()["matches"]
    assert matches and all(m["metadata"]["price"] <= 60 for m in matches)
    prices = [m["metadata"]["price"] for m in matches]
    assert prices == sorted(prices)
    assert all(m["label"] == "copies" for m in matches)  # only copies have prices
    empty = client.post("/api/search?field=price&min=1000", files=_upload(query))
    assert empty.status_code == 200 and empty.json()["matches"] == []
    bad = client.post("/api/search?min=3", files=_upload(query))
    assert bad.status_code == 400 and "field" in bad.json()["detail"]


def test_more_like_this_excludes_the_image_itself(client: TestClient) -> None:
    first = client.post(
        "/api/search?k=1&label=originals",
        files={"image": ("q.jpg", _jpeg("chelsea"), "image/jpeg")},
    )
    image_id = first.json()["matches"][0]["id"]
    again = client.get(f"/api/search/{image_id}?k=4").json()
    assert image_id not in [m["id"] for m in again["matches"]]
    assert all("chelsea" in m["name"] for m in again["matches"])
    assert client.get("/api/search/999999").status_code == 404


def _jpeg(name: str) -> bytes:
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_images_thumbnails_and_info(client: TestClient, shop: Path) -> None:
    match = client.post("/api/search?k=1", files={"image": ("q.jpg", _jpeg("coffee"), "x/y")})
    image_id = match.json()["matches"][0]["id"]
    original = client.get(f"/api/images/{image_id}")
    assert original.status_code == 200 and original.content[:2] == b"\xff\xd8"
    thumb = client.get(f"/api/images/{image_id}/thumbnail?size=128")
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) == 128
    assert client.get(f"/api/images/{image_id}/thumbnail?size=99").status_code == 400
    info = client.get(f"/api/images/{image_id}/info").json()
    assert info["id"] == image_id and info["name"].startswith("coffee")


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/..%2F..%2Fetc%2Fpasswd",
        "/api/images/-1",
        "/api/images/1.5",
        "/static/../catalog.sqlite",
        "/api/images/",
        "/static/",
    ],
)
def test_only_indexed_files_can_be_fetched(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (404, 405, 422)
    assert b"root:" not in response.content and b"SQLite" not in response.content


def test_bad_uploads_get_clear_4xx(client: TestClient) -> None:
    not_image = client.post("/api/search", files={"image": ("a.txt", b"hello", "text/plain")})
    assert not_image.status_code == 422 and "not an image" in not_image.json()["detail"]
    empty = client.post("/api/search", files={"image": ("a.jpg", b"", "image/jpeg")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    missing = client.post("/api/search")
    assert missing.status_code == 422 and "image" in missing.json()["detail"]
    big = client.post(
        "/api/search", files={"image": ("big.jpg", b"\0" * (3 * 1024 * 1024), "image/jpeg")}
    )
    assert big.status_code == 413
    bomb = client.post("/api/search", files={"image": ("bomb.png", _bomb(), "image/png")})
    assert bomb.status_code == 422 and "limit" in bomb.json()["detail"]
    k_too_big = client.post("/api/search?k=100000", files=_upload_bytes(_jpeg("rocket")))
    assert k_too_big.status_code == 400
    k_zero = client.post("/api/search?k=0", files=_upload_bytes(_jpeg("rocket")))
    assert k_zero.status_code == 422


def _upload_bytes(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"image": ("q.jpg", data, "image/jpeg")}


def _bomb() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_read_only_by_default(client: TestClient) -> None:
    assert client.post("/api/images", files=_upload_bytes(_jpeg("rocket"))).status_code == 403
    assert client.delete("/api/images/1").status_code == 403


def test_writes_when_allowed(shop: Path, tmp_path: Path) -> None:
    index = tmp_path / "writable.idx"
    shutil.copytree(shop, index, ignore=shutil.ignore_patterns("lock"))
    with TestClient(
        create_app(ServeSettings(index=index, allow_writes=True)), base_url=LOCAL
    ) as client:
        added = client.post(
            "/api/images", files={"image": ("astro.png", _jpeg("astronaut"), "image/png")}
        )
        assert added.status_code == 201, added.text
        new_id = added.json()["id"]
        assert client.get("/api/health").json()["count"] == 81
        found = client.post("/api/search?k=1", files=_upload_bytes(_jpeg("astronaut")))
        assert found.json()["matches"][0]["id"] == new_id
        uploads = IndexLayout(index).uploads
        assert len(list(uploads.iterdir())) == 1
        assert client.delete(f"/api/images/{new_id}").status_code == 204
        assert client.get("/api/health").json()["count"] == 80
        assert list(uploads.iterdir()) == []  # the upload's file goes with it
        # Ids are never reused: another upload gets a new id, and the deleted one stays gone.
        again = client.post(
            "/api/images", files={"image": ("coffee.png", _jpeg("coffee"), "image/png")}
        )
        assert again.status_code == 201, again.text
        assert again.json()["id"] > new_id
        assert client.get(f"/api/images/{new_id}/info").status_code == 404
        assert client.get("/api/health").json()["count"] == 81
        assert (
            client.post("/api/images", files={"image": ("x.txt", b"no", "text/plain")}).status_code
            == 422
        )


def test_openapi_docs_work_offline(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/api/search",
        "/api/search/{image_id}",
        "/api/images/{image_id}/thumbnail",
        "/api/info",
        "/api/health",
    } <= set(spec["paths"])
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    page = client.get("/").text
    assert "<title>lookalike" in page and "http" not in page.replace("http-equiv", "")
