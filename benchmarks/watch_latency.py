"""How soon `lookalike watch` reflects a new file in the index: files copied in one by one
(each written and closed), then the catalog polled (read-only, as a server reads it) until the
file is committed. Prints the median, p90 and max seconds from close to committed, beside the
watcher's own time per batch (hash, decode, embed, commit) from its --json output, so the rest
(event delivery, debounce, polling) shows as the difference. Target: median <= 2 s.

Then (--bulk N, default 100) N more photos are copied in at once, and the seconds from the
first close to the last commit are set beside `index_folder` of the same N photos into a fresh
index in the same run (the throughput cost of taking files as they arrive, in batches).

The watcher is the real CLI in its own process, on an index of real-size photos (1-4 MP) made
with the default network (EfficientNet-Lite0, the default quality) unless --embedder says
otherwise.

Usage: python benchmarks/watch_latency.py [--files 50] [--bulk 100] [--embedder NAME]
    [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _photos import make_photo_folder

from lookalike import SearchEngine


def committed(index: Path, path: str) -> bool:
    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM images WHERE path = ?", (path,)).fetchone() is not None
    finally:
        db.close()


def indexed(index: Path) -> set[str]:
    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return {row[0] for row in db.execute("SELECT path FROM images")}
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--bulk", type=int, default=100)
    parser.add_argument("--embedder", default=None, help="default: the default network")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-watch"
    )
    args = parser.parse_args()

    staged = make_photo_folder(args.workdir / "staged", 20 + args.files + args.bulk, seed=3)
    photos = args.workdir / "watched"
    index = args.workdir / "watched.idx"
    shutil.rmtree(photos, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    photos.mkdir(parents=True)
    for path in staged[:20]:  # an index that already holds some photos
        shutil.copy(path, photos / path.name)
    kwargs = {"embedder": args.embedder} if args.embedder else {}
    with SearchEngine.create(index, **kwargs) as engine:
        engine.index_folder(photos)
        name = engine.manifest.embedder.name

    log = args.workdir / "watch.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with log.open("wb") as sink:
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lookalike",
                "watch",
                str(photos),
                "--index",
                str(index),
                "--json",
                "--rescan",
                "0",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        while '"rescan"' not in log.read_text():
            if watcher.poll() is not None:
                raise SystemExit(f"watch failed:\n{log.read_text()}")
            time.sleep(0.05)
        time.sleep(1.0)  # the model is built after the rescan at start
        latencies = []
        for source in staged[20 : 20 + args.files]:
            target = photos / source.name
            data = source.read_bytes()
            with target.open("wb") as fh:
                fh.write(data)
            closed = time.monotonic()
            while not committed(index, str(target.resolve())):
                if time.monotonic() - closed > 60:
                    raise SystemExit(f"{target} not indexed after 60 s:\n{log.read_text()}")
                time.sleep(0.01)
            latencies.append(time.monotonic() - closed)
            time.sleep(0.3)
        bulk = staged[20 + args.files :]
        bulk_seconds = 0.0
        if bulk:
            first = time.monotonic()
            for source in bulk:
                shutil.copy(source, photos / source.name)
            names = {str((photos / p.name).resolve()) for p in bulk}
            while len(names & indexed(index)) < len(names):
                if time.monotonic() - first > 600:
                    raise SystemExit(f"bulk copy not indexed after 600 s:\n{log.read_text()}")
                time.sleep(0.05)
            bulk_seconds = time.monotonic() - first
        watcher.send_signal(signal.SIGINT)
        code = watcher.wait(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    if bulk:
        alone = args.workdir / "bulk"
        shutil.rmtree(alone, ignore_errors=True)
        alone.mkdir()
        for source in bulk:
            shutil.copy(source, alone / source.name)
        fresh = args.workdir / "bulk.idx"
        shutil.rmtree(fresh, ignore_errors=True)
        with SearchEngine.create(fresh, **kwargs) as engine:
            engine.model()  # built before the clock starts, as the watcher's is
            started = time.monotonic()
            engine.index_folder(alone)
            index_seconds = time.monotonic() - started
        print(
            f"bulk: {len(bulk)} photos copied in at once, committed by watch in "
            f"{bulk_seconds:.1f} s; `index_folder` of the same photos {index_seconds:.1f} s "
            f"(watch / index = {bulk_seconds / index_seconds:.2f}x)"
        )
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    batches = [x["seconds"] for x in lines if x.get("trigger") == "events"]
    seconds = np.asarray(latencies)
    print(
        f"watch latency, {args.files} files one by one ({name}, exit code {code}): close to "
        f"committed median {np.median(seconds):.2f} s, p90 {np.percentile(seconds, 90):.2f} s, "
        f"max {seconds.max():.2f} s; the watcher's own time per batch median "
        f"{np.median(batches):.2f} s over {len(batches)} batches"
    )


if __name__ == "__main__":
    main()
