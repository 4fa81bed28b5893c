"""Searches keep being answered, correctly, while `lookalike index` updates the same index in
another process: every answer reflects a committed state, and the count only grows."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike import IndexOptions, SearchEngine
from lookalike.evaluation.copies import CopySet
from tests.conftest import FAST_EMBEDDER
from tests.helpers import Server, multipart


def test_concurrent_searches_during_indexing(copy_set: CopySet, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in copy_set.originals:
        shutil.copy(path, photos / path.name)
    index = tmp_path / "live.idx"
    with SearchEngine.create(index, embedder=FAST_EMBEDDER) as engine:
        engine.index_folder(photos)
    for pair in copy_set.copies:  # 72 new files for the indexer to add while we search
        shutil.copy(pair.copy, photos / pair.copy.name)
    query = copy_set.originals[0]
    body, content_type = multipart("image", query.name, query.read_bytes())

    server = Server(index)
    failures: list[str] = []
    counts: list[list[int]] = [[] for _ in range(4)]
    stop = threading.Event()

    def client(slot: int) -> None:
        while not stop.is_set():
            try:
                request = urllib.request.Request(
                    f"{server.url}/api/search?k=3",
                    data=body,
                    headers={"Content-Type": content_type},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    top = json.loads(response.read())["matches"][0]
                if top["name"] != query.name:
                    failures.append(f"top result {top['name']}")
                with urllib.request.urlopen(f"{server.url}/api/health", timeout=30) as response:
                    counts[slot].append(json.loads(response.read())["count"])
            except Exception as exc:  # any failed request fails the test
                failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        indexer = subprocess.run(
            [
                sys.executable,
                "-m",
                "lookalike",
                "index",
                str(photos),
                "--index",
                str(index),
                "--commit-every",
                "8",
                "--batch-size",
                "8",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    assert indexer.returncode == 0, indexer.stderr
    assert not failures, failures[:5]
    seen = [c for slot in counts for c in slot]
    assert len(seen) >= 8 and min(seen) >= 8 and max(seen) <= 80
    for slot in counts:  # each client sees the index only grow
        assert slot == sorted(slot)
    assert len(set(seen)) >= 2, "no search ran while the index was changing"


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((48, 48), Image.Resampling.BILINEAR).save(out, format="PNG")
    return out.getvalue()


def _post(url: str, name: str, data: bytes) -> tuple[int, dict[str, object]]:
    body, content_type = multipart("image", name, data)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_parallel_uploads_all_succeed_and_are_searchable(tmp_path: Path) -> None:
    """The server writes through one writer: uploads at the same moment never collide with
    each other over the index's lock (no 409), and each one is searchable afterwards."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(4):
        (photos / f"seed{seed}.png").write_bytes(_png(seed))
    index = tmp_path / "uploads.idx"
    with SearchEngine.create(index, embedder="pixels") as engine:
        engine.index_folder(photos, options=IndexOptions(workers=0))
    uploads = [_png(100 + i) for i in range(8)]
    start = threading.Barrier(len(uploads))

    def upload(i: int) -> tuple[int, dict[str, object]]:
        start.wait(timeout=30)
        return _post(f"{server.url}/api/images", f"upload{i}.png", uploads[i])

    server = Server(index, "--allow-writes")
    try:
        with ThreadPoolExecutor(len(uploads)) as pool:
            answers = list(pool.map(upload, range(len(uploads))))
        assert [status for status, _ in answers] == [201] * len(uploads), answers
        with urllib.request.urlopen(f"{server.url}/api/health", timeout=30) as response:
            assert json.loads(response.read())["count"] == 4 + len(uploads)
        for data, (_, added) in zip(uploads, answers, strict=True):
            status, found = _post(f"{server.url}/api/search?k=1", "q.png", data)
            assert status == 200
            matches = found["matches"]
            assert isinstance(matches, list) and matches[0]["id"] == added["id"]
    finally:
        server.stop()
    assert len(list((index / "uploads").iterdir())) == len(uploads)
