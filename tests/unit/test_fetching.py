"""The feed image downloader against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

One module-scoped fetch runs every case at once (as a feed would); each test asserts, for its
case, which reason the Fetcher gave AND what the server saw (how many requests, how spaced).
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from lookalike.errors import (
    DiskFullError,
    FetchCancelledError,
    InvalidInputError,
    MissingDependencyError,
)
from lookalike.evaluation.copies import skimage_originals
from lookalike.feeds.fetching import (
    FailureReason,
    Fetched,
    Fetcher,
    FetchOptions,
    FetchRequest,
    FetchStats,
)
from tests.http_server import Handler, ImageServer

TIMEOUT = 2.0  # generous: this 2-core machine is shared; the stall lasts 5 s
MAX_BYTES = 1024 * 1024
OPTIONS = FetchOptions(
    concurrency=16,
    per_host=8,
    timeout=TIMEOUT,
    retries=3,
    backoff=0.05,
    max_retry_after=1.5,
    max_bytes=MAX_BYTES,
    max_redirects=3,
    seed=3,
)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
ODD_PATH = "with spaces/café à.jpg"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real photos as JPEG (what the server serves) plus local test files."""
    root = tmp_path_factory.mktemp("site")
    www = root / "www"
    (www / "photos").mkdir(parents=True)
    (www / "with spaces").mkdir()
    photos = dict(skimage_originals())
    for name in PHOTOS:
        photos[name].save(www / "photos" / f"{name}.jpg", quality=90)
    photos["motorcycle_left"].save(www / ODD_PATH, quality=90)
    (www / "photos" / "moved-here.jpg").write_bytes((www / "photos" / "coffee.jpg").read_bytes())
    (root / "page.jpg").write_text("<!doctype html><html><body>Not found</body></html>")
    return root


def jpeg(site: Path, name: str) -> bytes:
    return (site / "www" / "photos" / f"{name}.jpg").read_bytes()


def misbehaving_server(site: Path) -> ImageServer:
    server = ImageServer(site / "www")
    coffee = site / "www" / "photos" / "coffee.jpg"
    chelsea = jpeg(site, "chelsea")
    big = jpeg(site, "astronaut") * 16  # > MAX_BYTES

    def after(n_bad: int, bad: int, headers: dict[str, str] | None = None) -> object:
        def route(h: Handler, n: int) -> None:
            if n <= n_bad:
                h.send(bad, b"busy", headers, content_type="text/plain")
            else:
                h.send_file(coffee)

        return route

    def retry_after_date(h: Handler, n: int) -> None:
        if n == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            h.send(429, b"slow down", {"Retry-After": when})
        else:
            h.send_file(coffee)

    def reset_once(h: Handler, n: int) -> None:
        h.reset() if n == 1 else h.send_file(coffee)

    def unbounded(h: Handler, n: int) -> None:  # no Content-Length: the size is only counted
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        for start in range(0, len(big), 65536):
            h.wfile.write(big[start : start + 65536])

    def chain(i: int) -> object:
        return lambda h, n: h.send(302, headers={"Location": f"/chain/{i + 1}"})

    routes = {
        "/missing.jpg": lambda h, n: h.send(404, b"no", content_type="text/html"),
        "/gone.jpg": lambda h, n: h.send(410),
        "/forbidden.jpg": lambda h, n: h.send(403),
        "/flaky.jpg": after(2, 500),
        "/down.jpg": after(99, 503),
        "/busy.jpg": after(1, 429, {"Retry-After": "1"}),
        "/busy-date.jpg": retry_after_date,
        "/reset-once.jpg": reset_once,
        "/reset.jpg": lambda h, n: h.reset(),
        "/stall.jpg": lambda h, n: h.stall(chelsea, after=1000, seconds=5),
        "/wrong-type.jpg": lambda h, n: h.send(200, chelsea, content_type="text/plain"),
        "/page.jpg": lambda h, n: h.send(
            200, (site / "page.jpg").read_bytes(), content_type="image/jpeg"
        ),
        "/empty.jpg": lambda h, n: h.send(200, b"", content_type="image/jpeg"),
        "/truncated.jpg": lambda h, n: h.send(200, chelsea[: len(chelsea) // 2]),
        "/loop/a": lambda h, n: h.send(302, headers={"Location": "/loop/b"}),
        "/loop/b": lambda h, n: h.send(301, headers={"Location": "a"}),
        "/moved.jpg": lambda h, n: h.send(301, headers={"Location": "/photos/moved-here.jpg"}),
        "/huge.jpg": lambda h, n: h.send(200, big, content_type="image/jpeg"),
        "/huge-unbounded.jpg": unbounded,
    }
    for i in range(10):
        routes[f"/chain/{i}"] = chain(i)
    for path, route in routes.items():
        server.route(path, route)  # type: ignore[arg-type]
    return server


@dataclass(frozen=True)
class Run:
    server: ImageServer
    results: dict[str, Fetched]
    order: list[str]
    keys: list[str]
    cache: Path
    stats: FetchStats


def requests_for(server: ImageServer, site: Path) -> list[FetchRequest]:
    http = {name: f"/photos/{name}.jpg" for name in PHOTOS}
    http |= {
        p.strip("/").removesuffix(".jpg"): p
        for p in server.routes
        if not p.startswith(("/chain/", "/loop/b"))
    }
    http["chain"] = "/chain/0"
    requests = [FetchRequest(f"{key}#0", server.url(path)) for key, path in http.items()]
    return [
        *requests,
        FetchRequest("odd#0", server.url("/" + ODD_PATH)),
        FetchRequest("local#0", str(site / "www" / "photos" / "rocket.jpg")),
        FetchRequest("local-url#0", (site / "www" / ODD_PATH).as_uri()),
        FetchRequest("local-missing#0", str(site / "nothing.jpg")),
        FetchRequest("local-html#0", str(site / "page.jpg")),
        FetchRequest("ftp#0", "ftp://127.0.0.1/a.jpg"),
        FetchRequest("javascript#0", "javascript:alert(1)"),
        FetchRequest("data#0", "data:image/png;base64,iVBORw0KGgo="),
        FetchRequest("empty-url#0", "  "),
        FetchRequest("no-host#0", "http:///a.jpg"),
    ]


@pytest.fixture(scope="module")
def run(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    cache = tmp_path_factory.mktemp("cache")
    with misbehaving_server(site) as server, Fetcher(cache, OPTIONS) as fetcher:
        requests = requests_for(server, site)
        out = list(fetcher.fetch(requests))
        yield Run(
            server,
            {r.key: r for r in out},
            [r.key for r in out],
            [r.key for r in requests],
            cache,
            fetcher.stats,
        )


def outcome(run: Run, key: str) -> FailureReason | None:
    return run.results[f"{key}#0"].failure


def test_every_request_yields_exactly_one_result_as_each_completes(run: Run) -> None:
    assert sorted(run.order) == sorted(run.keys)
    assert run.order != run.keys  # slow ones (stall, retries) come last, not in input order
    assert run.order.index("missing#0") < run.order.index("down#0")


def test_real_photos_download_into_the_content_addressed_cache(run: Run, site: Path) -> None:
    for name in PHOTOS:
        result = run.results[f"{name}#0"]
        body = jpeg(site, name)
        assert result.failure is None and not result.from_cache
        assert result.sha256 == sha256(body) and result.status == 200 and result.attempts == 1
        assert result.path == run.cache / result.sha256[:2] / f"{result.sha256}.jpg"
        assert result.path.read_bytes() == body
        assert run.server.count(f"/photos/{name}.jpg") == 1
    assert not list(run.cache.glob(".*.tmp"))


def test_client_errors_fail_at_once_without_retry(run: Run) -> None:
    for key, status in (("missing", 404), ("gone", 410), ("forbidden", 403)):
        result = run.results[f"{key}#0"]
        assert result.failure is FailureReason.HTTP_STATUS
        assert (result.status, result.detail, result.attempts) == (status, f"HTTP {status}", 1)
        assert run.server.count(f"/{key}.jpg") == 1


def test_server_errors_are_retried_with_backoff(run: Run, site: Path) -> None:
    flaky = run.results["flaky#0"]
    assert flaky.failure is None and flaky.attempts == 3
    assert flaky.sha256 == sha256(jpeg(site, "coffee"))
    assert run.server.count("/flaky.jpg") == 3
    down = run.results["down#0"]
    assert down.failure is FailureReason.HTTP_STATUS and down.status == 503
    assert down.attempts == 4 and "after 4 tries" in down.detail
    assert run.server.count("/down.jpg") == 4  # 1 + retries


def test_retry_after_is_honoured_in_seconds_and_as_a_date(run: Run) -> None:
    for key in ("busy", "busy-date"):
        assert outcome(run, key) is None and run.results[f"{key}#0"].attempts == 2
        first, second = run.server.times(f"/{key}.jpg")
        assert second - first >= 0.95, key  # "1", or a date 1-2 s ahead


def test_retry_after_is_capped_and_holds_back_the_whole_host(site: Path, tmp_path: Path) -> None:
    options = FetchOptions(per_host=1, timeout=5, retries=2, max_retry_after=0.3, seed=1)
    with ImageServer(site / "www") as server, Fetcher(tmp_path, options) as fetcher:
        server.route("/busy.jpg", lambda h, n: h.send(429, headers={"Retry-After": "3600"}))
        requests = [FetchRequest("busy", server.url("/busy.jpg"))]
        requests += [FetchRequest(name, server.url(f"/photos/{name}.jpg")) for name in PHOTOS]
        start = time.monotonic()
        results = {r.key: r for r in fetcher.fetch(requests)}
        elapsed = time.monotonic() - start
    busy = results["busy"]
    assert busy.failure is FailureReason.HTTP_STATUS and busy.status == 429
    assert busy.attempts == 3 and "after 3 tries" in busy.detail
    times = server.times("/busy.jpg")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and all(0.28 <= gap < 3 for gap in gaps), gaps  # not an hour
    assert elapsed < 10
    # the host asked everyone to wait: the photos queued behind it were held back too
    assert all(results[name].failure is None for name in PHOTOS)
    first_photo = min(r.time for r in server.requests if r.path.startswith("/photos/"))
    assert first_photo - times[0] >= 0.28


def test_connection_resets_are_retried(run: Run) -> None:
    # the HTTP client resends at once, once, on a broken connection (RFC 9112 9.3.1); then
    # the Fetcher's own retries, with backoff; attempts counts what went on the wire
    once = run.results["reset-once#0"]
    assert once.failure is None and once.attempts == 2
    assert run.server.count("/reset-once.jpg") == 2
    reset = run.results["reset#0"]
    assert reset.failure is FailureReason.CONNECTION and "reset" in reset.detail
    assert reset.attempts == 8 and "after 4 tries" in reset.detail
    assert run.server.count("/reset.jpg") == 8


def test_a_body_that_stalls_times_out(run: Run) -> None:
    stall = run.results["stall#0"]
    assert stall.failure is FailureReason.TIMEOUT
    assert stall.detail == f"timed out after {TIMEOUT:g} s"
    assert run.server.count("/stall.jpg") == 1  # a timeout is not retried


def test_content_is_sniffed_never_trusted_from_content_type(run: Run, site: Path) -> None:
    wrong_type = run.results["wrong-type#0"]
    assert wrong_type.failure is None and wrong_type.sha256 == sha256(jpeg(site, "chelsea"))
    assert outcome(run, "page") is FailureReason.NOT_AN_IMAGE
    assert outcome(run, "empty") is FailureReason.NOT_AN_IMAGE
    assert run.results["empty#0"].detail == "an empty body"


def test_a_truncated_jpeg_is_returned_as_it_came(run: Run, site: Path) -> None:
    result = run.results["truncated#0"]
    body = jpeg(site, "chelsea")[: len(jpeg(site, "chelsea")) // 2]
    assert result.failure is None and result.path is not None
    assert result.path.read_bytes() == body
    with pytest.raises(OSError, match="truncated"), Image.open(io.BytesIO(body)) as image:
        image.load()  # decoding fails later, in the feed indexer, not here


def test_redirects_are_followed_and_loops_stopped(run: Run, site: Path) -> None:
    moved = run.results["moved#0"]
    assert moved.failure is None and moved.attempts == 2
    assert moved.path == run.results["coffee#0"].path  # same bytes, one file
    loop = run.results["loop/a#0"]
    assert loop.failure is FailureReason.TOO_MANY_REDIRECTS and "loop" in loop.detail
    assert (run.server.count("/loop/a"), run.server.count("/loop/b")) == (1, 1)
    assert run.server.count("/photos/moved-here.jpg") == 1
    chain = run.results["chain#0"]
    assert chain.failure is FailureReason.TOO_MANY_REDIRECTS
    assert [run.server.count(f"/chain/{i}") for i in range(6)] == [1, 1, 1, 1, 0, 0]


def test_bodies_over_the_size_limit_are_refused(run: Run) -> None:
    huge = run.results["huge#0"]
    assert huge.failure is FailureReason.TOO_LARGE and "Content-Length" in huge.detail
    unbounded = run.results["huge-unbounded#0"]
    assert unbounded.failure is FailureReason.TOO_LARGE and "over the limit" in unbounded.detail
    assert (run.server.count("/huge.jpg"), run.server.count("/huge-unbounded.jpg")) == (1, 1)


def test_spaces_and_non_ascii_characters_are_percent_encoded(run: Run, site: Path) -> None:
    result = run.results["odd#0"]
    assert result.failure is None
    assert result.sha256 == sha256((site / "www" / ODD_PATH).read_bytes())
    assert run.server.count("/with%20spaces/caf%C3%A9%20%C3%A0.jpg") == 1


def test_local_files_are_used_where_they_are(run: Run, site: Path) -> None:
    local = run.results["local#0"]
    assert local.path == site / "www" / "photos" / "rocket.jpg" and local.failure is None
    assert local.sha256 == sha256(jpeg(site, "rocket")) and local.attempts == 0
    assert run.results["local-url#0"].path == site / "www" / ODD_PATH
    assert outcome(run, "local-missing") is FailureReason.NOT_FOUND
    assert outcome(run, "local-html") is FailureReason.NOT_AN_IMAGE


def test_other_schemes_are_refused_without_a_request(run: Run) -> None:
    for key in ("ftp", "javascript", "data", "empty-url", "no-host"):
        result = run.results[f"{key}#0"]
        assert result.failure is FailureReason.BAD_URL, key
        assert result.attempts == 0


def test_stats_count_every_outcome(run: Run) -> None:
    failures: dict[FailureReason, int] = {}
    for result in run.results.values():
        if result.failure is not None:
            failures[result.failure] = failures.get(result.failure, 0) + 1
    assert dict(run.stats.failures) == failures
    assert failures == {
        FailureReason.HTTP_STATUS: 4,
        FailureReason.CONNECTION: 1,
        FailureReason.TIMEOUT: 1,
        FailureReason.NOT_AN_IMAGE: 3,
        FailureReason.TOO_MANY_REDIRECTS: 2,
        FailureReason.TOO_LARGE: 2,
        FailureReason.NOT_FOUND: 1,
        FailureReason.BAD_URL: 5,
    }
    ok = [r for r in run.results.values() if r.failure is None]
    assert run.stats.local == 2 and run.stats.downloaded == len(ok) - 2
    assert run.stats.submitted == run.stats.done == len(run.keys)
    assert run.stats.requests == len(run.server.requests)
    assert run.stats.retries == 2 + 3 + 1 + 1 + 3  # flaky, down, busy, busy-date, reset


def test_a_second_fetch_sends_no_request_and_revalidation_gets_304(
    site: Path, tmp_path: Path
) -> None:
    urls = [f"/photos/{name}.jpg" for name in PHOTOS]
    with ImageServer(site / "www") as server:
        requests = [FetchRequest(p, server.url(p)) for p in urls]
        with Fetcher(tmp_path, OPTIONS) as fetcher:
            first = {r.key: r for r in fetcher.fetch(requests)}
            assert all(r.failure is None and not r.from_cache for r in first.values())
            again = {r.key: r for r in fetcher.fetch(requests)}
            stats = fetcher.stats
        assert len(server.requests) == len(urls)  # the second run asked nothing
        assert all(r.from_cache and r.attempts == 0 for r in again.values())
        assert {k: r.path for k, r in again.items()} == {k: r.path for k, r in first.items()}
        assert (stats.downloaded, stats.from_cache, stats.requests) == (4, 4, 4)
        assert stats.bytes == sum(len(jpeg(site, n)) for n in PHOTOS)

        # a new Fetcher on the same folder (a re-run) revalidates: 304s, nothing downloaded
        revalidate = FetchOptions(timeout=5, revalidate=True)
        with Fetcher(tmp_path, revalidate) as fetcher:
            checked = {r.key: r for r in fetcher.fetch(requests)}
            assert fetcher.stats.bytes == 0
        assert all(r.from_cache and r.status == 304 and r.attempts == 1 for r in checked.values())
        assert {k: r.sha256 for k, r in checked.items()} == {k: r.sha256 for k, r in first.items()}
        conditional = server.requests[len(urls) :]
        assert len(conditional) == len(urls)
        assert all("If-None-Match" in r.headers for r in conditional)

        # a cached file deleted behind the cache's back is downloaded again, plainly
        gone = first[urls[0]].path
        assert gone is not None
        gone.unlink()
        with Fetcher(tmp_path, OPTIONS) as fetcher:
            again = {r.key: r for r in fetcher.fetch(requests)}
        assert not again[urls[0]].from_cache and again[urls[0]].path == gone and gone.is_file()
        assert len(server.requests) == 2 * len(urls) + 1
        assert "If-None-Match" not in server.requests[-1].headers


def test_a_changed_image_under_the_same_url_is_picked_up_by_revalidation(
    site: Path, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    before, after = jpeg(site, "coffee"), jpeg(site, "chelsea")
    (www / "item.jpg").write_bytes(before)
    with ImageServer(www) as server, Fetcher(tmp_path / "cache", OPTIONS) as fetcher:
        request = [FetchRequest("item", server.url("/item.jpg"))]
        assert [r.sha256 for r in fetcher.fetch(request)] == [sha256(before)]
        (www / "item.jpg").write_bytes(after)
        (stale,) = fetcher.fetch(request)  # trusted cache: no request, the old image
        assert stale.sha256 == sha256(before) and stale.from_cache
        assert server.count("/item.jpg") == 1
    with ImageServer(www) as server, Fetcher(tmp_path / "cache", revalidate_opts()) as fetcher:
        (fresh,) = fetcher.fetch([FetchRequest("item", server.url("/item.jpg"))])
        assert fresh.sha256 == sha256(after) and not fresh.from_cache and fresh.status == 200
        assert fresh.path is not None and fresh.path.read_bytes() == after
        assert server.count("/item.jpg") == 1


def revalidate_opts() -> FetchOptions:
    return FetchOptions(timeout=5, revalidate=True)


def test_per_host_concurrency_is_bounded(site: Path, tmp_path: Path) -> None:
    coffee = site / "www" / "photos" / "coffee.jpg"

    def slow(h: Handler, n: int) -> None:
        time.sleep(0.1)
        h.send_file(coffee)

    with ImageServer() as server, Fetcher(tmp_path, FetchOptions(per_host=3)) as fetcher:
        for i in range(12):
            server.route(f"/slow/{i}.jpg", slow)
        results = list(
            fetcher.fetch(FetchRequest(str(i), server.url(f"/slow/{i}.jpg")) for i in range(12))
        )
    assert all(r.failure is None for r in results) and len(results) == 12
    assert server.max_in_flight == 3


def fetch_loops() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "lookalike-fetch")


def test_a_slow_consumer_holds_downloads_back_and_close_cancels(site: Path, tmp_path: Path) -> None:
    options = FetchOptions(concurrency=2, timeout=5)
    with ImageServer(site / "www") as server:
        loops_before = fetch_loops()
        fetcher = Fetcher(tmp_path, options)
        stream = fetcher.fetch(
            FetchRequest(str(i), server.url(f"/photos/{PHOTOS[i % 4]}.jpg?n={i}"))
            for i in range(200)
        )
        first = next(stream)
        assert first.failure is None
        time.sleep(0.5)
        # 1 taken + a queue of 2 * concurrency + 2 in flight, and not the 200 of the feed
        assert len(server.requests) <= 1 + 4 + 2
        stats = fetcher.stats
        assert stats.submitted <= 1 + 4 + 2 and stats.done <= 1 + 4 + 2
        fetcher.close()
        assert fetch_loops() == loops_before
        sent = len(server.requests)
        time.sleep(0.2)
        assert len(server.requests) == sent
        with pytest.raises(InvalidInputError, match="closed"):
            fetcher.fetch([])


def test_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"FetchOptions\.concurrency"):
        FetchOptions(concurrency=0)
    with pytest.raises(InvalidInputError, match=r"FetchOptions\.timeout"):
        FetchOptions(timeout=float("nan"))


def test_the_same_url_twice_in_one_fetch_is_downloaded_once(site: Path, tmp_path: Path) -> None:
    with ImageServer(site / "www") as server, Fetcher(tmp_path, OPTIONS) as fetcher:
        url = server.url("/photos/chelsea.jpg")
        results = {r.key: r for r in fetcher.fetch(FetchRequest(f"v{i}", url) for i in range(5))}
        stats = fetcher.stats
    assert server.count("/photos/chelsea.jpg") == 1
    assert {r.sha256 for r in results.values()} == {sha256(jpeg(site, "chelsea"))}
    assert sorted(r.attempts for r in results.values()) == [0, 0, 0, 0, 1]
    assert (stats.downloaded, stats.from_cache) == (1, 4)


def test_misuse_is_refused_with_a_clear_error(site: Path, tmp_path: Path) -> None:
    with Fetcher(tmp_path, OPTIONS) as fetcher:
        with pytest.raises(InvalidInputError, match="expected FetchRequest items"):
            list(fetcher.fetch(["http://127.0.0.1/a.jpg"]))  # type: ignore[list-item]
        local = str(site / "www" / "photos" / "coffee.jpg")
        running = fetcher.fetch([FetchRequest("a", local), FetchRequest("b", local)])
        next(running)
        with pytest.raises(InvalidInputError, match="another fetch"):
            next(fetcher.fetch([]))
        assert [r.key for r in running] in (["a"], ["b"])
        assert list(fetcher.fetch([])) == []  # the first one finished: free again


def test_a_full_disk_ends_the_fetch_with_a_typed_error(site: Path, tmp_path: Path) -> None:
    from tests.integration.test_read_only import tmpfs

    body = jpeg(site, "astronaut")  # 10 different bodies of ~70 kB: more than the disk holds
    with tmpfs(tmp_path / "disk", "400k") as disk, ImageServer() as server:
        for i in range(10):
            server.route(f"/{i}.jpg", lambda h, n, i=i: h.send(200, body + bytes([i])))
        requests = [FetchRequest(str(i), server.url(f"/{i}.jpg")) for i in range(10)]
        options = FetchOptions(concurrency=1, timeout=5)
        with Fetcher(disk / "downloads", options) as fetcher:
            with pytest.raises(DiskFullError, match="disk full"):
                list(fetcher.fetch(requests))
            assert 1 <= fetcher.stats.downloaded < 6
        assert not list((disk / "downloads").glob(".*.tmp"))  # no half-written body left


def test_a_large_image_streams_to_disk_and_is_kept_whole(site: Path, tmp_path: Path) -> None:
    # bytes after a JPEG's end marker are ignored by decoders: a real JPEG, 9 MB on the wire
    body = jpeg(site, "coffee") + bytes(range(256)) * (9 * 4096)
    with ImageServer() as server, Fetcher(tmp_path, FetchOptions(timeout=10)) as fetcher:
        server.route("/poster.jpg", lambda h, n: h.send(200, body))
        (result,) = fetcher.fetch([FetchRequest("poster", server.url("/poster.jpg"))])
    assert result.failure is None and result.sha256 == sha256(body)
    assert result.path is not None and result.path.read_bytes() == body
    with Image.open(result.path) as image:
        image.load()
    assert not list(tmp_path.glob(".*.tmp"))


RAW_RESPONSES = {
    "/not-http": (b"NOT HTTP AT ALL\r\n\r\n", FailureReason.CONNECTION),
    "/bad-length": (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxx", FailureReason.CONNECTION),
    "/short-body": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\xff\xd8\xff\xe0",
        FailureReason.CONNECTION,
    ),
    "/bad-gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
        FailureReason.CONNECTION,
    ),
    "/to-javascript": (
        b"HTTP/1.1 302 Found\r\nLocation: javascript:alert(1)\r\nContent-Length: 0\r\n\r\n",
        FailureReason.BAD_URL,
    ),
    "/latin1-location": (
        b"HTTP/1.1 302 Found\r\nLocation: /caf\xe9 \xff.jpg\r\nContent-Length: 0\r\n\r\n",
        FailureReason.HTTP_STATUS,  # followed, percent-encoded byte for byte: a 404 there
    ),
}


def test_garbage_from_a_server_is_a_failure_of_that_image_only(tmp_path: Path) -> None:
    def raw(body: bytes) -> object:
        def route(h: Handler, n: int) -> None:
            h.close_connection = True
            h.wfile.write(body)

        return route

    options = FetchOptions(timeout=5, retries=1, backoff=0.01, seed=0)
    with ImageServer() as server, Fetcher(tmp_path, options) as fetcher:
        for path, (body, _) in RAW_RESPONSES.items():
            server.route(path, raw(body))  # type: ignore[arg-type]
        requests = [FetchRequest(path, server.url(path)) for path in RAW_RESPONSES]
        results = {r.key: r for r in fetcher.fetch(requests)}
    assert {k: r.failure for k, r in results.items()} == {
        path: reason for path, (_, reason) in RAW_RESPONSES.items()
    }
    assert all("\n" not in r.detail and len(r.detail) < 200 for r in results.values())
    assert server.count("/caf%E9%20%FF.jpg") == 1


def test_an_error_of_the_feed_itself_reaches_the_caller(site: Path, tmp_path: Path) -> None:
    local = str(site / "www" / "photos" / "rocket.jpg")

    def feed() -> Iterator[FetchRequest]:
        yield FetchRequest("first", local)
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a bad byte in the feed file")

    with Fetcher(tmp_path, OPTIONS) as fetcher:
        with pytest.raises(UnicodeDecodeError, match="bad byte"):
            list(fetcher.fetch(feed()))
        (again,) = fetcher.fetch([FetchRequest("again", local)])  # the Fetcher still works
        assert again.ok and again.path == Path(local)


def test_closing_from_another_thread_stops_the_fetch_with_a_clear_error(
    site: Path, tmp_path: Path
) -> None:
    outcome: list[BaseException | list[Fetched]] = []
    with ImageServer() as server:
        server.route("/stall.jpg", lambda h, n: h.stall(jpeg(site, "coffee"), after=99, seconds=9))
        fetcher = Fetcher(tmp_path, FetchOptions(timeout=30))
        requests = [FetchRequest(str(i), server.url(f"/stall.jpg?{i}")) for i in range(20)]

        def consume() -> None:
            try:
                outcome.append(list(fetcher.fetch(requests)))
            except FetchCancelledError as exc:
                outcome.append(exc)

        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(0.3)
        started = time.monotonic()
        fetcher.close()
        consumer.join(5)
        assert time.monotonic() - started < 2  # not the 30 s timeout, nor the 9 s stall
    assert not consumer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], FetchCancelledError)
    assert "closed before every request was answered" in str(outcome[0])


def test_https_certificates_are_checked(site: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {made.stderr!r}")
    with (
        ImageServer(site / "www", tls=(cert, key)) as server,
        Fetcher(tmp_path / "cache", OPTIONS) as fetcher,
    ):
        (result,) = fetcher.fetch([FetchRequest("self-signed", server.url("/photos/rocket.jpg"))])
    assert result.url.startswith("https://")
    assert result.failure is FailureReason.CONNECTION and "certificate" in result.detail
    assert result.attempts == 0 and "tries" not in result.detail  # not retried
    assert server.requests == []  # no request got past the handshake


def test_without_aiohttp_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # what an install without it looks like
    with pytest.raises(MissingDependencyError, match=r"lookalike\[feeds\]"):
        Fetcher(tmp_path)


def _nice(native_id: int) -> int:
    """A thread's nice value, from /proc (field 19 of its stat line)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc")
def test_download_and_store_threads_yield_the_cores_to_the_caller(
    site: Path, tmp_path: Path
) -> None:
    with ImageServer(site / "www") as server, Fetcher(tmp_path, OPTIONS) as fetcher:
        requests = [FetchRequest(p, server.url(f"/photos/{p}.jpg")) for p in PHOTOS]
        assert all(r.ok for r in fetcher.fetch(requests))
        workers = [
            t
            for t in threading.enumerate()
            if t.name.startswith(("lookalike-fetch", "lookalike-store"))
        ]
        assert {t.name.split("_")[0] for t in workers} == {"lookalike-fetch", "lookalike-store"}
        mine = _nice(threading.get_native_id())
        assert all(_nice(t.native_id or 0) == mine + 5 for t in workers)
