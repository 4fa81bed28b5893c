"""Approximate search at a million images, beside exact search, in one run.

1,000,000 vectors from a Gaussian mixture fitted to lite0's vectors of 10,000 real images
(Fashion-MNIST; 100 k-means clusters, each a Gaussian with its members' covariance), and 1,000
held-out queries from the same mixture. First a check that the synthetic vectors are as hard to
search as the real ones (local intrinsic dimensionality, relative contrast), beside a single
fitted Gaussian (`--distribution gaussian` runs the whole benchmark on that one instead).

The index is built the way `lookalike index` builds one: vectors committed to an index
directory, then the HNSW graph synced with the defaults (PCA to 128 learned on the collection,
M=16, efConstruction=100, 100 candidates re-scored with the full vectors). recall@10 is measured
against exact search over the full 1280-d vectors, the real ground truth.

Usage: python benchmarks/ann_scale.py [--vectors 1000000] [--distribution mixture|gaussian]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _vectors import gaussian_like, mixture_like, neighbour_stats, real_embeddings

from lookalike import SearchEngine


def latency_ms(search, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    ids = []
    timings = []
    for q in queries:
        start = time.perf_counter()
        found = search(q[None], k)
        timings.append(time.perf_counter() - start)
        ids.append(found)
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
    parser.add_argument("--distribution", choices=("mixture", "gaussian"), default="mixture")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    real = real_embeddings(args.workdir)
    print(f"machine: {os.cpu_count()} cores", flush=True)
    print(f"{'distribution (10,000 vectors each)':<40}{'LID':>6}{'contrast':>10}")
    lid, contrast = neighbour_stats(real)
    print(f"{'real lite0 vectors (Fashion-MNIST)':<40}{lid:>6.1f}{contrast:>10.2f}")
    for name, make in (("mixture", mixture_like), ("gaussian", gaussian_like)):
        lid, contrast = neighbour_stats(make(real, len(real), seed=1))
        print(f"{name + ' fitted to them':<40}{lid:>6.1f}{contrast:>10.2f}", flush=True)

    make = mixture_like if args.distribution == "mixture" else gaussian_like
    data = make(real, args.vectors + args.queries, seed=0)
    queries = data[args.vectors :].copy()
    folder = args.workdir / "ann-scale.idx"
    shutil.rmtree(folder, ignore_errors=True)
    engine = SearchEngine.create(folder, index_type="hnsw")
    for start in range(0, args.vectors, 100_000):
        stop = min(start + 100_000, args.vectors)
        engine.add_vectors([f"v{i}" for i in range(start, stop)], data[start:stop])
    del data
    print(
        f"{args.vectors:,} vectors x {queries.shape[1]} ({args.distribution} fitted to "
        f"{len(real):,} real lite0 vectors), {args.queries} held-out queries, k=10",
        flush=True,
    )

    exact = engine.vector_index()
    start = time.perf_counter()
    truth = exact.search(queries, 10)[1]
    batch_qps = len(queries) / (time.perf_counter() - start)
    exact_p50, exact_p99, _ = latency_ms(
        lambda q, k, index=exact: index.search(q, k)[1][0], queries[:100]
    )

    start = time.perf_counter()
    info = engine.sync_ann()
    build_s = time.perf_counter() - start
    exact_bytes = exact.vectors.nbytes / len(exact)
    engine.close()
    del exact, engine

    engine = SearchEngine.open(folder)  # a reader, as `lookalike search` and `serve` open it
    graph = engine.ann_index()
    graph_files = [p for p in (folder / "ann").iterdir() if p.name != "ann.json"]
    graph_bytes = sum(p.stat().st_size for p in graph_files) / args.vectors
    print(f"{'method':<46}{'p50 ms':>8}{'p99 ms':>8}{'recall@10':>11}")
    print(
        f"{'exact (NumPy BLAS, 1280-d)':<46}{exact_p50:>8.2f}{exact_p99:>8.2f}{1.0:>11.3f}"
        f"   ({batch_qps:.0f} queries/s batched)"
    )
    base = graph.params
    for rerank, ef in ((0, 128), (50, 64), (100, 100), (100, 128), (200, 200)):
        graph.params = replace(base, rerank=rerank, ef_search=ef)
        p50, p99, found = latency_ms(lambda q, k: graph.search(q, k)[1][0], queries)
        label = f"HNSW PCA {base.pca_dim}, ef{ef}, " + (
            f"re-score {rerank}" if rerank else "PCA scores"
        )
        print(f"{label:<46}{p50:>8.2f}{p99:>8.2f}{recall(found, truth):>11.3f}", flush=True)
    graph.params = base
    p50, p99, found = latency_ms(
        lambda q, k: [m.id for m in engine.search_vectors(q, k=k)[0]], queries
    )
    label = "SearchEngine.search_vectors (defaults)"
    print(f"{label:<46}{p50:>8.2f}{p99:>8.2f}{recall(found, truth):>11.3f}")
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"graph build (PCA fit + HNSW M{base.m} efC{base.ef_construction} + recall check): "
        f"{build_s:.0f} s ({args.vectors / build_s:,.0f} vectors/s); recall@10 recorded in the "
        f"index: {info.recall_at_10:.3f} on {info.recall_queries} stored vectors"
    )
    print(
        f"bytes/vector: graph + PCA {graph_bytes:.0f} on disk and in memory; the re-scored "
        f"full vectors are the index's float32 segments ({exact_bytes:.0f} on disk, memory-"
        f"mapped and populated at open: page cache, shared between processes, not copied); "
        f"exact search copies {exact_bytes:.0f} into memory; peak RSS of this run (which also "
        f"holds the exact index) {peak_rss_gb:.1f} GB"
    )
    engine.close()


if __name__ == "__main__":
    main()
