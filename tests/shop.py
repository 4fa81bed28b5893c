"""A shop for feed tests and benchmarks: real photos (scikit-image originals with small seeded
edits, so that every image differs) served over real HTTP on 127.0.0.1 by the fetcher's test
server (tests/http_server.py, which logs every request), and product feeds that point at them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from lookalike.evaluation.copies import skimage_originals
from tests.http_server import Handler, ImageServer


class Shop:
    """Files under ``root`` served over real HTTP (``tests.http_server.ImageServer``: ETags,
    Last-Modified, conditional requests) at :attr:`base`. ``delay``: seconds each file's GET
    waits before answering (files present when the shop opens)."""

    def __init__(self, root: Path, *, delay: float = 0.0) -> None:
        self.root = root
        self.server = ImageServer(root)
        if delay:
            for path in root.rglob("*"):
                if path.is_file():
                    name = "/" + path.relative_to(root).as_posix()
                    self.server.route(name, partial(_slowly, delay, name))
        self.server.start()
        self.base = self.server.url("")

    def url(self, name: str) -> str:
        return self.server.url(f"/{name}")

    def requested(self) -> list[str]:
        """The paths asked for since the last :meth:`clear`, in order."""
        with self.server._lock:
            return [r.path for r in self.server.requests]

    def conditional(self) -> list[str]:
        """The paths asked for with a conditional request (revalidations) since the last clear."""
        with self.server._lock:
            return [
                r.path
                for r in self.server.requests
                if "If-None-Match" in r.headers or "If-Modified-Since" in r.headers
            ]

    def clear(self) -> None:
        with self.server._lock:
            self.server.requests.clear()

    def stop(self) -> None:
        self.server.stop()


def _slowly(delay: float, name: str, handler: Handler, count: int) -> None:
    time.sleep(delay)
    handler.send_folder_file(name)


@contextmanager
def open_shop(root: Path, *, delay: float = 0.0) -> Iterator[Shop]:
    shop = Shop(root, delay=delay)
    try:
        yield shop
    finally:
        shop.stop()


@dataclass(frozen=True)
class ChildShop:
    """A shop served by a child process: its base URL, and what it was asked and spent."""

    base: str
    pid: int

    def requested(self) -> list[str]:
        """The paths asked for so far."""
        with urllib.request.urlopen(f"{self.base}{LOG_PATH}") as answer:
            paths: list[str] = json.loads(answer.read())
        return [p for p in paths if p != LOG_PATH]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def shop_process(root: Path) -> Iterator[ChildShop]:
    """The shop served by a child process, so that serving costs the measured process no CPU
    time (it still costs the machine's)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.shop", str(root)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield ChildShop(child.stdout.readline().strip(), child.pid)
    finally:
        child.terminate()
        child.wait()


#: The child process's route answering its request log as JSON.
LOG_PATH = "/_requests"


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


if __name__ == "__main__":  # python -m tests.shop ROOT: serve ROOT until terminated
    server = ImageServer(Path(sys.argv[1]))

    def _log(handler: Handler, count: int) -> None:
        with server._lock:
            paths = [r.path for r in server.requests]
        handler.send(200, json.dumps(paths).encode(), content_type="application/json")

    server.route(LOG_PATH, _log)
    server.start()
    print(server.url(""), flush=True)
    server.stopping.wait()
