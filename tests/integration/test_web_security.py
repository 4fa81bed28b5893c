"""The server's guards, in process: Host allow-list, Origin check, security headers, paths
relative to the indexed folder, the upload pixel limit, the bounded decode slots."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike import SearchEngine
from lookalike.web.app import create_app
from lookalike.web.service import SearchService
from lookalike.web.settings import ServeSettings
from tests.conftest import FAST_EMBEDDER

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def index(small_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("security") / "small.idx"
    with SearchEngine.create(directory, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(small_photos)
    return directory


@pytest.fixture(scope="module")
def client(index: Path) -> Iterator[TestClient]:
    settings = ServeSettings(index=index, allowed_hosts=("photos.lan",))
    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client


def _jpeg(side: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _upload(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"image": ("q.jpg", data, "image/jpeg")}


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("127.0.0.1:8000", 200),
        ("localhost:8000", 200),
        ("LOCALHOST", 200),
        ("[::1]:8000", 200),
        ("photos.lan:8000", 200),  # --allow-host
        ("evil.example", 400),
        ("evil.example:8000", 400),
        ("127.0.0.1.evil.example", 400),
        ("user@127.0.0.1", 400),
        ("", 400),
    ],
)
def test_host_allow_list(client: TestClient, host: str, status: int) -> None:
    response = client.get("/api/health", headers={"host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"] == "BadHost"


def test_origin_check_on_state_changing_routes(client: TestClient) -> None:
    image = _jpeg(64)
    assert client.post("/api/search", files=_upload(image)).status_code == 200  # no Origin
    same = client.post("/api/search", files=_upload(image), headers={"origin": LOCAL})
    assert same.status_code == 200
    other_loopback_name = client.post(
        "/api/search", files=_upload(image), headers={"origin": "http://localhost"}
    )
    assert other_loopback_name.status_code == 200
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null", "file://"):
        refused = client.post("/api/search", files=_upload(image), headers={"origin": origin})
        assert refused.status_code == 403, origin
        assert refused.json()["error"] == "CrossOrigin"
    deleted = client.delete("/api/images/1", headers={"origin": "http://evil.example"})
    assert deleted.status_code == 403 and deleted.json()["error"] == "CrossOrigin"
    # Reading is not state-changing: a GET with a foreign Origin is answered (CORS keeps the
    # answer from the other site's script).
    assert client.get("/api/health", headers={"origin": "http://evil.example"}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/api/health", "/api/images/999", "/static/app.js"])
def test_security_headers_on_every_answer(client: TestClient, path: str) -> None:
    response = client.get(path)
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    refused = client.get(path, headers={"host": "evil.example"})
    assert refused.headers["x-frame-options"] == "DENY"


def test_docs_policy_allows_exactly_its_inline_script(client: TestClient) -> None:
    docs = client.get("/docs")
    policy = docs.headers["content-security-policy"]
    scripts = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "script-src 'self' 'sha256-" in policy and "frame-ancestors 'none'" in policy


def test_paths_are_relative_unless_show_paths(client: TestClient, index: Path) -> None:
    body = client.post("/api/search?k=6", files=_upload(_jpeg(64))).json()
    paths = {m["path"] for m in body["matches"]}
    assert "animals/chelsea.jpg" in paths and "things/coffee.jpg" in paths
    assert all(not p.startswith("/") for p in paths)
    image_id = next(m["id"] for m in body["matches"] if m["path"] == "animals/chelsea.jpg")
    assert client.get(f"/api/images/{image_id}/info").json()["path"] == "animals/chelsea.jpg"
    assert client.get(f"/api/search/{image_id}").json()["query"] == "animals/chelsea.jpg"
    settings = ServeSettings(index=index, show_paths=True)
    with TestClient(create_app(settings), base_url=LOCAL) as full:
        info = full.get(f"/api/images/{image_id}/info").json()
        assert Path(info["path"]).is_absolute() and info["path"].endswith("animals/chelsea.jpg")


@pytest.mark.parametrize(
    "path",
    [
        "/api/images/99999999999999999999999",
        "/api/images/9223372036854775808/info",
        "/api/images/99999999999999999999999/thumbnail",
        "/api/search/99999999999999999999999",
    ],
)
def test_ids_outside_the_integer_range_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text


def test_uploads_have_their_own_pixel_limit(index: Path) -> None:
    settings = ServeSettings(index=index, max_upload_pixels=300 * 300)
    with TestClient(create_app(settings), base_url=LOCAL) as limited:
        assert limited.post("/api/search", files=_upload(_jpeg(300))).status_code == 200
        refused = limited.post("/api/search", files=_upload(_jpeg(301)))
        assert refused.status_code == 422 and "over the limit of 90,000" in refused.text


def test_decodes_are_bounded_and_the_overflow_is_503(index: Path) -> None:
    settings = ServeSettings(index=index, decode_slots=1, decode_wait=0.2)
    service = SearchService(settings)
    with TestClient(create_app(settings, service=service), base_url=LOCAL) as busy:
        slots = service._decode_slots
        assert slots.acquire(timeout=1)  # another upload is being decoded
        try:
            refused = busy.post("/api/search", files=_upload(_jpeg(64)))
        finally:
            slots.release()
        assert refused.status_code == 503 and "busy" in refused.json()["detail"]
        assert busy.post("/api/search", files=_upload(_jpeg(64))).status_code == 200
    service.close()
