"""Slow clients against a real `lookalike serve`: headers or a body sent a trickle at a time
are cut off within their deadline, and the server keeps answering others meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike import SearchEngine
from tests.conftest import FAST_EMBEDDER
from tests.helpers import Server

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(small_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    index = tmp_path_factory.mktemp("timeouts") / "small.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(small_photos)
    running = Server(
        index, "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)
    )
    yield running
    running.stop()


def _trickle(port: int, chunks: list[bytes], pause: float, limit: float) -> tuple[float, bytes]:
    """Send ``chunks`` one per ``pause`` seconds until the server closes the connection or
    ``limit`` seconds pass; returns (seconds until closed, what the server sent)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.settimeout(pause)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # closed by the server
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            received += data
            if not data:
                break
            if time.monotonic() - started > limit:
                break
        else:
            sock.settimeout(limit)
            try:
                while data := sock.recv(65536):
                    received += data
            except OSError:
                pass
    return time.monotonic() - started, received


def test_slow_headers_are_cut_off(server: Server) -> None:
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 400
    chunks = [request[i : i + 1] for i in range(len(request))]  # one byte per 0.1 s: ~40 s
    seconds, received = _trickle(server.port, chunks, 0.1, limit=20)
    assert seconds < HEADER_TIMEOUT + 2, seconds
    assert b"200 OK" not in received
    assert server.process.poll() is None


def test_idle_connection_without_a_request_is_closed(server: Server) -> None:
    seconds, received = _trickle(server.port, [b""], 0.1, limit=20)
    assert seconds < HEADER_TIMEOUT + 2 and received == b""


def test_slow_body_gets_408_and_is_closed(server: Server) -> None:
    head = (
        b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    )
    chunks = [head] + [b"-"] * 400  # one body byte per 0.1 s: 40 s for the whole body
    seconds, received = _trickle(server.port, chunks, 0.1, limit=20)
    assert seconds < HEADER_TIMEOUT + BODY_TIMEOUT + 2, seconds
    assert received.startswith(b"HTTP/1.1 408"), received[:200]


def test_endless_headers_are_refused_at_the_size_limit(server: Server) -> None:
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000
    seconds, received = _trickle(server.port, [request], 1.0, limit=10)
    assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert seconds < HEADER_TIMEOUT  # refused for its size, before the deadline


def test_keep_alive_requests_still_work(server: Server) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):
        connection.request("GET", "/api/health")
        response = connection.getresponse()
        assert response.status == 200 and b'"ok"' in response.read()
        time.sleep(0.5)
    connection.close()
