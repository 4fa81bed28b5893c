"""Load on `lookalike serve` over loopback, micro-batching off then on, side by side: 20
concurrent clients for 30 s, each uploading a real 1-4 MP JPEG and waiting for the results,
then one client alone, against a 10,000-image index of the default embedder.

The index holds the default embedder's vectors of 240 real photos and 9,760 synthetic vectors
drawn from a Gaussian fitted to them (added with ``add_vectors``: what is searched costs the
same whatever made the vectors); the uploads are real JPEGs (scikit-image photos cropped,
tiled and upscaled to 1-4 MP). Each mode runs in its own server process started the way a
user starts it. Also measured in-process: the stages after the network for 16 queries with
equal options, searched in one call (as a batch groups them) and one by one.

Usage: python benchmarks/serve_load.py [--clients 20] [--seconds 30] [--alone-seconds 15]
           [--batch-wait-ms 5] [--max-batch 16] [--rounds 1] [--index DIR] [--workdir DIR]
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.search_options import SearchOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _photos import make_photo_folder

from tests.helpers import Server, multipart

INDEX_SIZE = 10_000


def build_index(index: Path, photos: Path) -> None:
    """The default embedder's vectors of the photos, plus synthetic ones up to 10,000."""
    rng = np.random.default_rng(0)
    with SearchEngine.create(index) as engine:
        engine.index_folder(photos)
        _, real = engine.export_vectors()
        mean = real.mean(axis=0)
        _, s, vt = np.linalg.svd(real - mean, full_matrices=False)
        scales = s / np.sqrt(len(real) - 1)
        extra = INDEX_SIZE - len(real)
        z = rng.standard_normal((extra, len(scales))).astype(np.float32)
        noise = rng.standard_normal((extra, real.shape[1])).astype(np.float32) * 0.01
        sample = (mean + (z * scales) @ vt + noise).astype(np.float32)
        engine.add_vectors([f"synthetic/{i:06d}.jpg" for i in range(extra)], sample)
        engine.sync_ann()  # what `lookalike index` does


@dataclass(frozen=True)
class Load:
    requests: int
    errors: list[str]
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.requests else float("nan")

    def line(self) -> str:
        return (
            f"{self.requests:>6} ok {len(self.errors):>3} errors {self.rate:>7.1f} requests/s   "
            f"p50 {self.percentile(50):>6.0f}  p90 {self.percentile(90):>6.0f}  "
            f"p99 {self.percentile(99):>6.0f} ms"
        )


def pooled(loads: list[Load]) -> Load:
    """Several runs of one mode as one: requests over total time, all latencies."""
    return Load(
        sum(x.requests for x in loads),
        [e for x in loads for e in x.errors],
        sum(x.seconds for x in loads),
        np.concatenate([x.latencies_ms for x in loads]),
    )


def run_threads(target: Callable[[int], None], count: int) -> float:
    """Run ``target(0)`` .. ``target(count - 1)`` on threads at once; the wall seconds taken."""
    started = time.perf_counter()
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def load(port: int, bodies: list[tuple[bytes, str]], clients: int, seconds: float) -> Load:
    """``clients`` threads, each sending searches back to back for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = slot
        while time.monotonic() < deadline:
            body, content_type = bodies[i % len(bodies)]
            i += clients
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
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append(f"status {response.status}: {payload[:200]!r}")
        connection.close()

    wall = run_threads(client, clients)
    return Load(len(latencies), errors, wall, np.asarray(latencies) * 1000)


def stages_after_network(index: Path, queries: list[Path], batch: int) -> tuple[float, float]:
    """Milliseconds for the stages after the network (candidates, re-ranking, matches) of
    ``batch`` queries with equal options: in one call, and one query per call."""
    with SearchEngine.open(index) as engine:
        pipeline = engine.pipeline
        vectors = pipeline.embed(pipeline.decode([str(q) for q in queries[:batch]]))
        options = SearchOptions(k=10)
        pipeline.search_vectors(vectors, options)  # warm
        grouped, alone = [], []
        for _ in range(5):
            started = time.perf_counter()
            pipeline.search_vectors(vectors, options)
            grouped.append(time.perf_counter() - started)
            started = time.perf_counter()
            for row in range(len(vectors)):
                pipeline.search_vectors(vectors[row : row + 1], options)
            alone.append(time.perf_counter() - started)
    return float(np.median(grouped)) * 1000, float(np.median(alone)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--alone-seconds", type=float, default=15.0)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="alternate off and on this often")
    parser.add_argument("--index", type=Path, help="reuse this index (built here if missing)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    photo_folder = args.workdir / "serve-photos"
    photos = make_photo_folder(photo_folder, 240)
    index = args.index or args.workdir / "serve-load-10k.idx"
    if not (index / "manifest.json").exists():
        build_index(index, photo_folder)
    with SearchEngine.open(index) as engine:
        count, used = len(engine), engine.search_index_type()
    queries = photos[:40]
    bodies = [multipart("image", q.name, q.read_bytes()) for q in queries]
    mean_kb = np.mean([len(b) for b, _ in bodies]) / 1024
    print(
        f"machine: {os.cpu_count()} cores; index: {count:,} images (default embedder, "
        f"{used} search); {args.clients} clients for {args.seconds:.0f} s, then 1 client for "
        f"{args.alone_seconds:.0f} s, over loopback; uploads of {mean_kb:.0f} KB on average "
        f"(1-4 MP JPEGs), k=10"
    )
    modes = {
        "off": ("--batch-wait-ms", "0"),
        "on": ("--batch-wait-ms", f"{args.batch_wait_ms:g}", "--max-batch", str(args.max_batch)),
    }
    results: dict[str, list[tuple[Load, Load]]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):  # off, on, off, on...: a drifting load hits both
        for mode, flags in modes.items():
            server = Server(index, *flags)
            try:
                load(server.port, bodies[:4], 2, 2.0)  # warm: first runs of each code path
                many = load(server.port, bodies, args.clients, args.seconds)
                alone = load(server.port, bodies, 1, args.alone_seconds)
            finally:
                server.stop()
            results[mode].append((many, alone))
            print(f"round {round_ + 1}, batching {mode:<3} ({' '.join(flags)})")
            print(f"  {args.clients} clients: {many.line()}")
            print(f"  1 client:   {alone.line()}")
            for failure in (many.errors + alone.errors)[:3]:
                print(f"  error: {failure}")
    off_many, off_alone = (pooled([r[i] for r in results["off"]]) for i in (0, 1))
    on_many, on_alone = (pooled([r[i] for r in results["on"]]) for i in (0, 1))
    print(
        f"on / off, {args.rounds} round(s) pooled: requests/s x{on_many.rate / off_many.rate:.2f}, "
        f"p50 x{on_many.percentile(50) / off_many.percentile(50):.2f}, "
        f"p99 x{on_many.percentile(99) / off_many.percentile(99):.2f}; one client: "
        f"p50 x{on_alone.percentile(50) / off_alone.percentile(50):.2f}, "
        f"requests/s x{on_alone.rate / off_alone.rate:.2f}"
    )
    grouped, one_by_one = stages_after_network(index, queries, args.max_batch)
    print(
        f"stages after the network, {args.max_batch} queries with equal options: one call "
        f"{grouped:.1f} ms, one by one {one_by_one:.1f} ms (x{one_by_one / grouped:.1f})"
    )


if __name__ == "__main__":
    main()
