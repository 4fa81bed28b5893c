"""Warm single-image query latency, end to end (decode, embed, search, catalog lookup), against
an index of 100,000 vectors, two ways in one run: exact search, and what an index of that size
gets by default (`--index-type auto` builds the HNSW graph from 100,000 images on: PCA 128,
100 candidates re-scored with the full vectors).

The index holds real photos' embeddings plus vectors sampled from a Gaussian fitted to them
(mean and covariance of the default embedder's vectors of real photos, then L2-normalised), so
that the gallery is distributed like real embeddings.

Usage: python benchmarks/query_latency.py [--vectors 100000] [--queries 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _photos import make_photo_folder

from lookalike import IndexOptions, SearchEngine
from lookalike.imaging import load_prepared


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    photos = make_photo_folder(args.workdir / "photos", 240)
    index = args.workdir / "latency.idx"
    shutil.rmtree(index, ignore_errors=True)
    rng = np.random.default_rng(0)
    with SearchEngine.create(index) as engine:
        engine.index_folder(args.workdir / "photos")
        _, real = engine.export_vectors()
        mean = real.mean(axis=0)
        # Low-rank Gaussian fit: real photos span few directions; add isotropic noise for the rest.
        centred = real - mean
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        scales = s / np.sqrt(len(real) - 1)
        extra = args.vectors - len(real)
        for start in range(0, extra, 20_000):
            n = min(20_000, extra - start)
            z = rng.standard_normal((n, len(scales))).astype(np.float32)
            noise = rng.standard_normal((n, real.shape[1])).astype(np.float32) * 0.01
            sample = mean + (z * scales) @ vt + noise
            engine.add_vectors([f"synthetic/{start + i:06d}" for i in range(n)], sample)
        count = len(engine)
        info = engine.sync_ann()  # what `lookalike index` does for an auto index this big

    queries = [str(p) for p in photos[: args.queries]]
    print(
        f"machine: {os.cpu_count()} cores; index: {count:,} vectors x {real.shape[1]} "
        f"(float32); {len(queries)} single-image queries of 1-4 MP JPEGs, k=10; graph recall@10 "
        f"{info.recall_at_10:.3f}"
    )
    print(f"{'stage':<44}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for index_type in ("exact", "auto"):
        with SearchEngine.open(index, writable=True) as writer:
            writer.index_folder(
                args.workdir / "photos", options=IndexOptions(index_type=index_type)
            )
        with SearchEngine.open(index) as engine:
            rows = measure(engine, queries)
            used = engine.search_index_type()
        for name, values in rows:
            label = f"{name} [{index_type}: {used}]" if name.startswith("end") else name
            label = label.replace("end to end, query expansion on", "  + query expansion")
            print(
                f"{label:<44}{percentile(values, 50):>9.1f}{percentile(values, 95):>9.1f}"
                f"{percentile(values, 99):>9.1f}"
            )


def measure(engine: SearchEngine, queries: list[str]) -> list[tuple[str, list[float]]]:
    engine.search([queries[0]], k=10)  # warm: model loaded, vectors or graph in memory
    total, expanded, prepare, embed, search = [], [], [], [], []
    spec = engine.embedder.input_spec
    for query in queries:
        t0 = time.perf_counter()
        result = engine.search([query], k=10)[0]
        total.append(time.perf_counter() - t0)
        assert result.matches[0].path == str(Path(query).resolve()), result.matches[0]
        t0 = time.perf_counter()
        engine.search([query], k=10, expansion=True)
        expanded.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        pixels = load_prepared(query, spec)
        t2 = time.perf_counter()
        vector = engine.embedder.embed(pixels[None])
        t3 = time.perf_counter()
        engine.search_vectors(vector, k=10)
        t4 = time.perf_counter()
        prepare.append(t2 - t1)
        embed.append(t3 - t2)
        search.append(t4 - t3)
    return [
        ("end to end (engine.search)", total),
        ("end to end, query expansion on", expanded),
        ("  decode + prepare", prepare),
        ("  embed (ONNX Runtime)", embed),
        ("  search + catalog", search),
    ]


if __name__ == "__main__":
    main()
