"""Micro-batching in the server: concurrent searches over real HTTP get exactly the answers
they get one at a time, batches really form, a lone search is not held back, and
`POST /api/search` takes several images at once. The real network's batches are checked in
the one heavy test."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.errors import InvalidInputError
from lookalike.search_options import SearchOptions
from lookalike.web.api import MAX_FILES
from lookalike.web.app import create_app
from lookalike.web.service import SearchService
from lookalike.web.settings import ServeSettings
from tests.helpers import run_cli, served_copy

LOCAL = "http://127.0.0.1"
#: Each query is asked with each of these: options differ, so batches mix them.
VARIANTS = ("k=5", "k=3&label=originals", "k=4&box=8,8,120,100", "k=4&verify=true&verify_top=6")


def multipart(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body with these (field, file name, bytes) parts."""
    boundary = "lookalike-batch-boundary"
    body = b"".join(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
        for field, name, data in parts
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, parts: list[tuple[str, str, bytes]]) -> dict[str, object]:
    body, content_type = multipart(parts)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, object] = json.loads(response.read())
    return answer


def essentials(answer: dict[str, object]) -> list[tuple[int, float, int | None]]:
    """What must not change with batching: ids, scores (to float32 rounding), inliers."""
    matches = answer["matches"]
    assert isinstance(matches, list) and matches, answer
    return [(m["id"], round(m["score"], 5), m["inliers"]) for m in matches]


def same(a: list[tuple[int, float, int | None]], b: list[tuple[int, float, int | None]]) -> bool:
    return [(i, n) for i, _, n in a] == [(i, n) for i, _, n in b] and all(
        abs(x - y) <= 2e-5 for (_, x, _), (_, y, _) in zip(a, b, strict=True)
    )


def queries(gallery: Path) -> list[Path]:
    return sorted((gallery / "originals").glob("*.jpg"))


def concurrent_equals_sequential(url: str, photos: list[Path]) -> None:
    asks = [(photo, variant) for photo in photos for variant in VARIANTS]

    def ask(item: tuple[Path, str]) -> list[tuple[int, float, int | None]]:
        photo, variant = item
        answer = post(f"{url}/api/search?{variant}", [("image", photo.name, photo.read_bytes())])
        return essentials(answer)

    alone = [ask(item) for item in asks]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, asks * 2))
    for position, answer in enumerate(together):
        assert same(answer, alone[position % len(asks)]), asks[position % len(asks)]


def test_concurrent_http_searches_answer_as_one_at_a_time(
    fast_gallery_index: Path, gallery: Path, tmp_path: Path
) -> None:
    with served_copy(fast_gallery_index, tmp_path) as url:
        concurrent_equals_sequential(url, queries(gallery)[:4])


@pytest.mark.heavy
def test_concurrent_http_searches_with_the_network_answer_as_one_at_a_time(
    gallery_index: Path, gallery: Path, tmp_path: Path
) -> None:
    with served_copy(gallery_index, tmp_path) as url:
        concurrent_equals_sequential(url, queries(gallery)[:6])


def service(index: Path, wait: float) -> SearchService:
    searching = SearchService(ServeSettings(index=index, batch_wait=wait))
    searching.warm()
    return searching


def test_batches_form_and_a_lone_search_is_not_held_back(
    fast_gallery_index: Path, gallery: Path
) -> None:
    photos = [p.read_bytes() for p in queries(gallery)]
    options = SearchOptions(k=5)
    off = service(fast_gallery_index, 0.0)
    on = service(fast_gallery_index, 1.0)  # the longest wait: batches surely form
    try:
        assert off.batcher is None and on.batcher is not None
        alone = [off.search_upload(data, options)[0] for data in photos]
        # A lone search goes at once, whatever the wait.
        result, seconds = on.search_upload(photos[0], options)
        assert seconds < 0.9 and result == alone[0]
        start = threading.Barrier(len(photos))

        def search(data: bytes) -> object:
            start.wait()
            return on.search_upload(data, options)[0]

        with ThreadPoolExecutor(len(photos)) as pool:
            together = list(pool.map(search, photos))
        assert [[m.id for m in r.matches] for r in together] == [
            [m.id for m in r.matches] for r in alone
        ]
        assert on.batcher.largest > 1  # they really shared batches
        assert on.batcher.batches < 1 + len(photos)
    finally:
        off.close()
        on.close()


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_serving_keeps_blas_on_one_thread_and_gives_it_back(fast_gallery_index: Path) -> None:
    """Idle BLAS threads spin between a server's small products and take a core from
    decoding: a server runs NumPy's BLAS on one thread, and gives the setting back at close."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):  # more than one, also on one core
        before = blas_threads()
        assert before and all(n == 2 for n in before)  # NumPy's BLAS is found
        searching = service(fast_gallery_index, 0.005)
        try:
            assert blas_threads() == [1] * len(before)
        finally:
            searching.close()
        assert blas_threads() == before


@pytest.mark.heavy
def test_batches_in_the_network_at_once_answer_as_one_at_a_time(
    gallery_index: Path, gallery: Path
) -> None:
    """Batches that run beside each other use a one-thread copy of the network: the answers
    are those of one search at a time (same ids, scores to float32 rounding)."""
    photos = [p.read_bytes() for p in queries(gallery)[:8]]
    options = SearchOptions(k=5)
    off = service(gallery_index, 0.0)
    on = SearchService(
        ServeSettings(index=gallery_index, batch_wait=0.001, max_batch=1, batch_workers=2)
    )
    on.warm()
    try:
        alone = [off.search_upload(data, options)[0] for data in photos]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda d: on.search_upload(d, options)[0], photos * 3))
        for position, result in enumerate(together):
            want = alone[position % len(photos)]
            assert [m.id for m in result.matches] == [m.id for m in want.matches]
            for got, expected in zip(result.matches, want.matches, strict=True):
                assert got.score == pytest.approx(expected.score, abs=2e-5)
        assert on.overlapping_batches > 0  # the one-thread copy really ran
    finally:
        off.close()
        on.close()


@pytest.fixture(scope="module")
def client(fast_gallery_index: Path) -> Iterator[TestClient]:
    settings = ServeSettings(index=fast_gallery_index)
    with TestClient(create_app(settings), base_url=LOCAL) as test_client:
        yield test_client


def test_several_images_in_one_request(client: TestClient, gallery: Path) -> None:
    photos = queries(gallery)[:3]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    answer = client.post("/api/search?k=4&box=8,8,120,100", files=files)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["query"] for r in results] == [p.name for p in photos]
    for photo, result in zip(photos, results, strict=True):
        single = client.post(
            "/api/search?k=4&box=8,8,120,100",
            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        ).json()
        assert set(single) == {"query", "k", "took_ms", "matches", "box"}  # unchanged shape
        assert single["query"] == "<uploaded image>"
        assert same(essentials(result), essentials(single))
        assert result["box"] == single["box"] == [8, 8, 120, 100]
    # Without a box, the first result of each search is the query image itself, in order.
    whole = client.post("/api/search?k=2", files=files).json()["results"]
    assert [r["matches"][0]["name"] for r in whole] == [p.name for p in photos]


def test_several_images_errors(client: TestClient, gallery: Path) -> None:
    photo = queries(gallery)[0]
    good = ("images", (photo.name, photo.read_bytes(), "image/jpeg"))
    bad = client.post(
        "/api/search", files=[good, ("images", ("notes.txt", b"not an image", "text/plain"))]
    )
    assert bad.status_code == 422 and "notes.txt" in bad.json()["detail"]
    both = client.post(
        "/api/search", files=[good, ("image", (photo.name, photo.read_bytes(), "image/jpeg"))]
    )
    assert both.status_code == 422 and "'images'" in both.json()["detail"]
    many = client.post("/api/search", files=[good] * (MAX_FILES + 1))
    assert many.status_code == 400 and f"at most {MAX_FILES}" in many.json()["detail"]
    # The server still answers after the refusals.
    assert client.post("/api/search", files=[good]).status_code == 200


def test_serve_batch_flags_are_checked(fast_gallery_index: Path) -> None:
    for flags, message in (
        (("--batch-wait-ms", "-1"), "--batch-wait-ms must be 0 (off) to 1000, got -1"),
        (("--max-batch", "0"), "--max-batch must be at least 1, got 0"),
        (("--batch-workers", "0"), "--batch-workers must be at least 1, got 0"),
    ):
        done = run_cli("serve", "--index", fast_gallery_index, *flags, timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_batch_options_are_checked(fast_gallery_index: Path) -> None:
    with pytest.raises(InvalidInputError, match="batch wait"):
        ServeSettings(index=fast_gallery_index, batch_wait=-0.1)
    with pytest.raises(InvalidInputError, match="max_batch"):
        ServeSettings(index=fast_gallery_index, max_batch=0)
    with pytest.raises(InvalidInputError, match="batch_workers"):
        ServeSettings(index=fast_gallery_index, batch_workers=0)
