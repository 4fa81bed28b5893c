"""Approximate search at a million images, beside exact search, in one run.

1,000,000 vectors sampled from a Gaussian fitted to lite0's vectors of 10,000 real photos
(Fashion-MNIST), 1,000 held-out queries from the same distribution. The HNSW graph is built the
way `lookalike index --index-type hnsw --pca 256` builds it (PCA learned on the collection,
M=32, efConstruction=200); recall@10 is measured against exact search over the full 1280-d
vectors, the real ground truth.

Usage: python benchmarks/ann_scale.py [--vectors 1000000] [--pca 256]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _vectors import gaussian_like, real_embeddings

from lookalike.indexes.exact import ExactIndex
from lookalike.indexes.hnsw import HnswIndex, HnswParams


def latency_ms(search, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    ids = []
    timings = []
    for q in queries:
        start = time.perf_counter()
        _, found = search(q[None], k)
        timings.append(time.perf_counter() - start)
        ids.append(found[0])
    ms = np.asarray(timings) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), np.asarray(ids)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--pca", type=int, default=256)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    real = real_embeddings(args.workdir)
    data = gaussian_like(real, args.vectors + args.queries, seed=1)
    vectors, queries = data[: args.vectors], data[args.vectors :]
    ids = np.arange(args.vectors, dtype=np.int64)
    print(
        f"machine: {os.cpu_count()} cores; {args.vectors:,} vectors x {vectors.shape[1]} "
        f"(Gaussian fitted to {len(real):,} real lite0 vectors), {args.queries} held-out "
        "queries, k=10",
        flush=True,
    )

    exact = ExactIndex(ids, vectors)
    truth = exact.search(queries, 10)[1]
    exact_p50, exact_p99, _ = latency_ms(exact.search, queries[:100])
    batch_start = time.perf_counter()
    exact.search(queries, 10)
    batch_qps = len(queries) / (time.perf_counter() - batch_start)

    start = time.perf_counter()
    ann = HnswIndex.build(
        ids,
        vectors,
        metric="cosine",
        params=HnswParams(m=32, ef_construction=200, pca_dim=args.pca),
    )
    build_s = time.perf_counter() - start
    folder = args.workdir / "ann-scale"
    ann.save(folder, recall=0.0, queries=0, dim=vectors.shape[1])
    graph_bytes = sum(p.stat().st_size for p in folder.iterdir())
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6

    print(f"{'method':<34}{'p50 ms':>8}{'p99 ms':>8}{'recall@10':>11}")
    print(
        f"{'exact (NumPy BLAS, 1280-d)':<34}{exact_p50:>8.2f}{exact_p99:>8.2f}{1.0:>11.3f}"
        f"   ({batch_qps:.0f} queries/s batched)"
    )
    for ef in (32, 64, 128, 256):
        ann.graph.set_ef(ef)
        ann = HnswIndex(
            ann.graph,
            metric="cosine",
            params=HnswParams(m=32, ef_construction=200, ef_search=ef, pca_dim=args.pca),
            projection=ann.projection,
            deleted=set(),
        )
        p50, p99, found = latency_ms(ann.search, queries)
        print(
            f"{f'HNSW M32 ef{ef} (PCA {args.pca})':<34}{p50:>8.2f}{p99:>8.2f}"
            f"{recall(found, truth):>11.3f}"
        )
    per_vector_disk_exact = vectors.shape[1] * 4
    print(
        f"build: {build_s:.0f} s ({args.vectors / build_s:,.0f} vectors/s); graph on disk "
        f"{graph_bytes / args.vectors:.0f} B/vector (+ {per_vector_disk_exact} B/vector of "
        f"float32 segments kept as the truth); exact search holds {per_vector_disk_exact} "
        f"B/vector in memory, the graph {graph_bytes / args.vectors:.0f}; peak RSS "
        f"{peak_rss_gb:.1f} GB"
    )


if __name__ == "__main__":
    main()
