"""Serving from Milvus (milvus-lite, its embedded edition) beside the built-in exact index.

100,000 vectors sampled from a Gaussian fitted to lite0's vectors of 10,000 real photos
(Fashion-MNIST), held-out queries from the same distribution, k=10. Prints the time to push the
vectors with ``sync_from``, single-query p50/p99 latency, batched queries/s, and how far Milvus's
top-10 agrees with exact search (1.000 with its FLAT index).

Usage: python benchmarks/milvus_backend.py [--vectors 100000] [--queries 1000] [--hnsw]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _vectors import gaussian_like, real_embeddings

from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import HnswParams
from lookalike.indexes.milvus import MilvusIndex

Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def latency_ms(search: Search, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    timings = []
    for q in queries:
        start = time.perf_counter()
        search(q[None], k)
        timings.append(time.perf_counter() - start)
    ms = np.asarray(timings) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def batched_qps(search: Search, queries: np.ndarray, k: int = 10) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    _, found = search(queries, k)
    return len(queries) / (time.perf_counter() - start), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=30)
    parser.add_argument("--hnsw", action="store_true", help="an HNSW index instead of FLAT")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    real = real_embeddings(args.workdir)
    data = gaussian_like(real, args.vectors + args.queries, seed=1)
    vectors, queries = data[: args.vectors], data[args.vectors :]
    ids = np.arange(args.vectors, dtype=np.int64)
    print(
        f"machine: {os.cpu_count()} cores; "
        f"{args.vectors:,} vectors x {vectors.shape[1]}, {args.queries} held-out queries, k=10",
        flush=True,
    )

    exact = ExactIndex(ids, vectors)
    exact_p50, exact_p99 = latency_ms(exact.search, queries[: args.latency_queries])
    exact_qps, truth = batched_qps(exact.search, queries)
    print(
        f"exact (NumPy)  : p50 {exact_p50:7.2f} ms  p99 {exact_p99:7.2f} ms  "
        f"batched {exact_qps:8.1f} queries/s",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as folder:
        hnsw = HnswParams(m=32, ef_construction=200, ef_search=128) if args.hnsw else None
        uri = str(Path(folder) / "bench.db")
        with MilvusIndex(uri, "bench", dim=vectors.shape[1], hnsw=hnsw) as milvus:
            start = time.perf_counter()
            milvus.sync_from(ids, vectors)
            load_s = time.perf_counter() - start
            milvus.search(queries[:1], 10)  # the first search may build or load the index
            p50, p99 = latency_ms(milvus.search, queries[: args.latency_queries])
            qps, found = batched_qps(milvus.search, queries)
            start = time.perf_counter()
            report = milvus.sync_from(ids, vectors)
            resync_s = time.perf_counter() - start
            kind = milvus.index_type
    agreement = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    print(
        f"milvus-lite {kind:<4}: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"batched {qps:8.1f} queries/s  top-10 agreement with exact {agreement:.3f}"
    )
    print(
        f"milvus-lite {kind:<4}: sync_from of {args.vectors:,} vectors {load_s:.1f} s "
        f"({args.vectors / load_s:,.0f} vectors/s); a second sync_from with nothing to change "
        f"{resync_s:.1f} s ({report.unchanged:,} unchanged)"
    )


if __name__ == "__main__":
    main()
