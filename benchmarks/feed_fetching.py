"""Feed image fetching throughput: ~200 real-size JPEGs (1-4 MP) served by a local HTTP server
(tests/http_server.py, threaded, HTTP/1.1 keep-alive, in a process of its own) and fetched by
`Fetcher` into an empty download cache; then the same feed again (answered from the cache, no
request) and once more with revalidation (conditional requests, 304s). Loopback, so this
measures the fetcher's own cost (and the little Python server's), not a network.

Usage: python benchmarks/feed_fetching.py [--images 200] [--concurrency 32] [--per-host 8]
       [--workdir DIR]

For another benchmark that needs a feed's images served over HTTP: `python -m tests.http_server
FOLDER` from the repository root (prints its port), or in-process, with the root on sys.path,
`with tests.http_server.ImageServer(folder) as server: server.url("/photo0001.jpg")`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _photos import make_photo_folder

from lookalike.feeds.fetching import Fetcher, FetchOptions, FetchRequest


def timed_fetch(cache: Path, options: FetchOptions, requests: list[FetchRequest]) -> tuple:
    with Fetcher(cache, options) as fetcher:
        start = time.perf_counter()
        results = list(fetcher.fetch(requests))
        seconds = time.perf_counter() - start
        stats = fetcher.stats
    failed = [r for r in results if r.failure is not None]
    if failed:
        raise SystemExit(f"{len(failed)} fetches failed, e.g. {failed[0]}")
    return seconds, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "lookalike-bench"
    photos = make_photo_folder(workdir / "photos", args.images)
    total = sum(p.stat().st_size for p in photos)
    print(f"{len(photos)} JPEGs, {total / 1e6:.1f} MB, mean {total / len(photos) / 1e6:.2f} MB")
    cache = workdir / "fetch-cache"
    shutil.rmtree(cache, ignore_errors=True)
    options = FetchOptions(concurrency=args.concurrency, per_host=args.per_host, timeout=60)
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.http_server", str(photos[0].parent)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        requests = [FetchRequest(p.stem, f"http://127.0.0.1:{port}/{p.name}") for p in photos]
        runs = [
            ("cold (empty cache)", options),
            ("re-run (cached)", options),
            ("re-run, revalidate", FetchOptions(**{**options.__dict__, "revalidate": True})),
        ]
        print(f"concurrency {args.concurrency}, per host {args.per_host}")
        for name, run_options in runs:
            seconds, stats = timed_fetch(cache, run_options, requests)
            print(
                f"{name:20s} {seconds:7.2f} s  {len(photos) / seconds:8.1f} images/s  "
                f"{stats.bytes / 1e6 / seconds:7.1f} MB/s  requests {stats.requests}  "
                f"downloaded {stats.downloaded}  from cache {stats.from_cache}"
            )
    finally:
        server.terminate()
        server.wait()
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
