"""A real HTTP/1.1 server on 127.0.0.1 in a thread, for tests and benchmarks that fetch images.

It serves a folder's files (with ETag and Last-Modified, answering conditional requests with
304) and any route a test adds: a function given the request handler and how many times its
path was asked for, free to misbehave (reset the connection, stall mid-body). Every request is
logged with its time, path and headers, so a test can assert exactly what was sent.

    with ImageServer(folder) as server:
        server.route("/flaky.jpg", lambda h, n: h.send(500) if n < 3 else h.send_file(photo))
        fetch(server.url("/flaky.jpg"))
        assert server.count("/flaky.jpg") == 3
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

Route = Callable[["Handler", int], None]


@dataclass(frozen=True)
class LoggedRequest:
    time: float
    path: str  # as sent on the wire (percent-encoded), without the query
    headers: dict[str, str]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def handle(self) -> None:
        # a client that went away, or a connection a route broke on purpose
        with contextlib.suppress(OSError, ValueError):
            super().handle()

    def do_GET(self) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        n = owner._log(LoggedRequest(time.monotonic(), path, dict(self.headers.items())))
        with owner._track():
            route = owner.routes.get(path)
            if route is not None:
                route(self, n)
            else:
                self.send_folder_file(path)

    # What routes call ------------------------------------------------------------------------

    def send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/octet-stream",
    ) -> None:
        self.send_response(status)
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_file(self, path: Path, *, content_type: str = "image/jpeg") -> None:
        """The file as a static file server sends it: its ETag computed once per version of
        the file, the body handed to the kernel (sendfile), not copied through Python."""
        stat = path.stat()
        etag = self.server.owner.etag(path, stat)
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag:
            self.send(304, headers={"ETag": etag, "Last-Modified": modified})
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.end_headers()
        with path.open("rb") as fh:
            self.connection.sendfile(fh)

    def send_folder_file(self, path: str) -> None:
        folder = self.server.owner.folder
        target = (folder / unquote(path).lstrip("/")).resolve() if folder else None
        if target is None or not target.is_file() or folder not in target.parents:
            self.send(404, b"not found", content_type="text/plain")
            return
        self.send_file(target)

    def reset(self) -> None:
        """Break the connection with a TCP reset (RST), as a crashed server or proxy does."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()

    def stall(self, body: bytes, *, after: int, seconds: float) -> None:
        """Send the headers and the first ``after`` bytes, then stop for ``seconds``."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:after])
        self.wfile.flush()
        self.server.owner.stopping.wait(seconds)
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # the default backlog of 5 drops the SYNs of a burst of new connections (the client then
    # waits a second to resend): a fetcher opens per_host connections at once
    request_queue_size = 128
    owner: ImageServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken connections are what some tests are about


class ImageServer:
    """A threaded HTTP server on a free loopback port; serves ``folder`` (if given) and routes."""

    def __init__(self, folder: Path | None = None, *, tls: tuple[Path, Path] | None = None) -> None:
        self.folder = folder.resolve() if folder is not None else None
        self.routes: dict[str, Route] = {}
        self.requests: list[LoggedRequest] = []
        self._counts: dict[str, int] = {}
        self._etags: dict[tuple[str, int, int], str] = {}
        self.stopping = threading.Event()
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self.scheme = "http"
        if tls is not None:  # (certificate file, key file): serve https
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def etag(self, path: Path, stat: os.stat_result) -> str:
        """The file's ETag (a hash of its bytes), remembered per path, size and mtime."""
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._etags.get(key)
        if known is None:
            known = f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"'
            with self._lock:
                self._etags[key] = known
        return known

    def count(self, path: str) -> int:
        with self._lock:
            return self._counts.get(path, 0)

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [r.time for r in self.requests if r.path == path]

    def _log(self, request: LoggedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            self._counts[request.path] = self._counts.get(request.path, 0) + 1
            return self._counts[request.path]

    def _track(self) -> _InFlight:
        return _InFlight(self)

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _InFlight:
    def __init__(self, owner: ImageServer) -> None:
        self.owner = owner

    def __enter__(self) -> None:
        with self.owner._lock:
            self.owner._in_flight += 1
            self.owner.max_in_flight = max(self.owner.max_in_flight, self.owner._in_flight)

    def __exit__(self, *exc: object) -> None:
        with self.owner._lock:
            self.owner._in_flight -= 1


def main() -> None:
    """``python -m tests.http_server FOLDER``: serve a folder until interrupted (prints the
    port on the first line), e.g. in a process of its own for a benchmark."""
    import sys

    with ImageServer(Path(sys.argv[1])) as server:
        print(server.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.stopping.wait()


if __name__ == "__main__":
    main()
