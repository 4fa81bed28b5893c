"""Searches keep being answered, correctly, while `lookalike index` updates the same index in
another process: every answer reflects a committed state, and the count only grows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from lookalike import SearchEngine
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
