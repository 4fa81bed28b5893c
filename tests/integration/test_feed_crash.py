"""Killing `lookalike index FEED.csv` (SIGKILL, one PID) while images download and commit loses
nothing committed, and running it again completes the index with every product once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lookalike import SearchEngine
from tests import processes
from tests.conftest import FAST_EMBEDDER
from tests.helpers import cli_env, committed_images
from tests.shop import open_shop, shop_photos, write_csv_feed

pytestmark = pytest.mark.heavy  # a real process killed mid-run

ROWS = 120


def _kill_after(feed: Path, index: Path, committed: int) -> int:
    """Index the feed in a child process; SIGKILL it (its PID only) once ``committed`` images
    are in the catalog. Returns the count at the kill."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "index",
            str(feed),
            "--index",
            str(index),
            "--embedder",
            FAST_EMBEDDER,
            "--commit-every",
            "8",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--concurrency",
            "4",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=cli_env(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if committed_images(index) >= committed:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    left = processes.wait_gone(processes.with_argument(str(index)), 2.0)
    processes.kill_all(left)
    assert not left, f"{len(left)} processes outlived the killed indexer"
    return committed_images(index)


def _identities(index: Path) -> list[tuple[str, str]]:
    with SearchEngine.open(index) as engine:
        found = []
        for image_id in engine.vector_index().ids.tolist():
            record, fields = engine.record(image_id)
            assert Path(record.path).is_file()
            found.append((str(fields["product_id"]), str(fields["image_url"])))
        return found


def test_sigkill_mid_feed_then_rerun_completes(tmp_path: Path) -> None:
    photos = shop_photos(tmp_path / "www", 2 * ROWS, seed=11)
    with open_shop(tmp_path / "www", delay=0.01) as shop:
        rows: list[dict[str, object]] = [
            {
                "product_id": f"P{i:03d}",
                "price": i,
                "images": [shop.url(photos[2 * i].name), shop.url(photos[2 * i + 1].name)],
            }
            for i in range(ROWS)
        ]
        wanted = {(str(r["product_id"]), url) for r in rows for url in r["images"]}  # type: ignore[attr-defined]
        feed = write_csv_feed(tmp_path / "feed.csv", rows)
        index = tmp_path / "shop.idx"
        counts = []
        for target in (16, ROWS):  # after the first commits, then half way
            counts.append(_kill_after(feed, index, target))
            held = _identities(index)
            assert len(held) == len(set(held)) == counts[-1]  # no image twice
            assert set(held) <= wanted
        assert 0 < counts[0] <= counts[1] < len(wanted)
        shop.clear()
        with SearchEngine.open(index, writable=True) as engine:
            report = engine.index_feed(feed)
        assert report.failures == ()
        assert report.added == len(wanted) - counts[1] and report.unchanged == counts[1]
        assert len(shop.requested()) <= report.added  # nothing committed is fetched again
        final = _identities(index)
        assert sorted(final) == sorted(wanted)
