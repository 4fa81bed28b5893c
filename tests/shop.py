"""A shop for feed tests and benchmarks: real photos (scikit-image originals with small seeded
edits, so that every image differs) served over real HTTP on 127.0.0.1, with a log of every
request the server answered, and product feeds that point at them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image, ImageEnhance

from lookalike.evaluation.copies import skimage_originals
from tests.helpers import free_port


class _Handler(SimpleHTTPRequestHandler):
    server: _ShopServer

    def do_GET(self) -> None:
        conditional = "If-None-Match" in self.headers or "If-Modified-Since" in self.headers
        self.server.record("GET", self.path, conditional)
        if self.server.delay:
            time.sleep(self.server.delay)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server.record("HEAD", self.path, False)
        super().do_HEAD()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log is the test's record, stderr stays quiet


class _ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, delay: float, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), partial(_Handler, directory=str(root)))
        self.delay = delay
        self.log: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.log_file: TextIO | None = None

    def record(self, method: str, path: str, conditional: bool) -> None:
        with self._lock:
            self.log.append((method, path, conditional))
            if self.log_file is not None:
                self.log_file.write(f"{method} {path}\n")
                self.log_file.flush()


class Shop:
    """Files under ``root`` served at :attr:`base`; :meth:`requested` lists the paths asked
    for since the last :meth:`clear`. ``delay``: seconds each GET waits before answering."""

    def __init__(self, root: Path, *, delay: float = 0.0) -> None:
        self.root = root
        self._server = _ShopServer(root, delay)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def requested(self) -> list[str]:
        """The paths of the GET requests answered since the last clear, in order."""
        return [path for method, path, _ in list(self._server.log) if method == "GET"]

    def conditional(self) -> list[str]:
        """The paths of the conditional GETs (revalidations) since the last clear."""
        return [path for method, path, c in list(self._server.log) if method == "GET" and c]

    def clear(self) -> None:
        self._server.log.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def open_shop(root: Path, *, delay: float = 0.0) -> Iterator[Shop]:
    shop = Shop(root, delay=delay)
    try:
        yield shop
    finally:
        shop.stop()


@contextmanager
def shop_process(root: Path, log: Path) -> Iterator[str]:
    """The shop served by a child process (so that serving costs the measured process no CPU
    time); yields its base URL. Every request is appended to ``log`` ("GET /path" lines)."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.shop", str(root), str(port), str(log)],
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        deadline = time.monotonic() + 30
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait()


def shop_photos(
    folder: Path, count: int, *, seed: int = 0, side: int = 160, start: int = 0
) -> list[Path]:
    """``count`` JPEGs named ``img{start + i:05d}.jpg``: each a scikit-image photo with a
    seeded crop, colour and brightness change, ``side`` px on the longer side."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    originals = [image for _, image in skimage_originals()]
    paths = []
    for i in range(count):
        path = folder / f"img{start + i:05d}.jpg"
        edited_photo(originals[(start + i) % len(originals)], rng, side).save(path, quality=90)
        paths.append(path)
    return paths


def edited_photo(base: Image.Image, rng: np.random.Generator, side: int) -> Image.Image:
    """A seeded small edit of ``base``: a crop of 70-100 %, colour and brightness changes."""
    fraction = rng.uniform(0.7, 1.0)
    w, h = int(base.width * fraction), int(base.height * fraction)
    x, y = int(rng.integers(0, base.width - w + 1)), int(rng.integers(0, base.height - h + 1))
    image = base.crop((x, y, x + w, y + h))
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(0.6, 1.4)))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
    scale = side / max(image.size)
    return image.resize((max(1, int(w * scale)), max(1, int(h * scale))))


def write_csv_feed(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    """A CSV feed: list values become JSON arrays in their cell."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
    return path


def write_jsonl_feed(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m tests.shop ROOT PORT LOG: serve ROOT until terminated
    served = _ShopServer(Path(sys.argv[1]), 0.0, int(sys.argv[2]))
    with Path(sys.argv[3]).open("a", encoding="utf-8") as opened:
        served.log_file = opened
        served.serve_forever()
