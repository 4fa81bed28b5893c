"""Load on `lookalike serve` over loopback: 20 concurrent clients for 30 s, each uploading a
real photo and waiting for the results, against a 10,000-image index (Fashion-MNIST's test
split, indexed with the default embedder).

Usage: python benchmarks/serve_load.py [--clients 20] [--seconds 30] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.evaluation.datasets import fashion_mnist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _photos import make_photo_folder

from tests.helpers import Server, multipart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    index = args.workdir / "serve-10k.idx"
    if not (index / "manifest.json").exists():
        data = fashion_mnist(args.workdir)
        with SearchEngine.create(index) as engine:
            engine.index_folder(data.root)
    with SearchEngine.open(index) as engine:
        count = len(engine)
    queries = make_photo_folder(args.workdir / "photos", 240)[:40]
    bodies = [multipart("image", q.name, q.read_bytes()) for q in queries]
    mean_kb = np.mean([len(b) for b, _ in bodies]) / 1024

    server = Server(index)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        i = slot
        while time.monotonic() < deadline:
            body, content_type = bodies[i % len(bodies)]
            i += args.clients
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", "/api/search?k=10", body=body, headers={"Content-Type": content_type}
                )
                response = connection.getresponse()
                payload = response.read()
                ok = response.status == 200 and len(json.loads(payload)["matches"]) == 10
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append(f"status {response.status}")
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server.stop()
    ms = np.asarray(latencies) * 1000
    print(
        f"machine: {os.cpu_count()} cores; index: {count:,} images (lite0, exact search); "
        f"{args.clients} clients for {args.seconds:.0f} s over loopback; uploads of "
        f"{mean_kb:.0f} KB on average (1-4 MP JPEGs), k=10"
    )
    print(
        f"requests: {len(latencies)} ok, {len(errors)} errors; "
        f"{len(latencies) / wall:.1f} requests/s"
    )
    print(
        f"latency ms: p50 {np.percentile(ms, 50):.0f}, p90 {np.percentile(ms, 90):.0f}, "
        f"p99 {np.percentile(ms, 99):.0f}, max {ms.max():.0f}"
    )
    if errors:
        print("first errors:", errors[:3])


if __name__ == "__main__":
    main()
