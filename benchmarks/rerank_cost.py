"""What the query re-ranking stages cost: warm single-query latency at 100,000 vectors with the
stages off, query expansion on, hubness correction on, and both, measured side by side in one
run (each query runs the four ways in turn); and the neighbour statistic's costs (built from
scratch for 10,000 and for all vectors, and updated when 100 images are added).

Vectors are synthetic and clustered (a mixture of Gaussians on the unit sphere, 1331-d: the
`colour-histogram` embedder with 11 bins makes vectors of that size, a little more than
EfficientNet-Lite0's 1280), added with `add_vectors`: the stages cost the same whatever made
the vectors. Queries are stored vectors with noise (near-copies), searched by vector, so the
figures are the search and re-ranking stages alone (embedding a query costs the same either way).

Usage: python benchmarks/rerank_cost.py [--vectors 100000] [--queries 200] [--workdir DIR]
       [--no-graph]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.embedders.base import EmbedderSpec
from lookalike.indexes.neighbours import NeighbourTable, build_neighbours
from lookalike.store import IndexStore

EMBEDDER = EmbedderSpec("colour-histogram", {"bins": 11})
WAYS = {
    "stages off": {"expansion": False, "hubness": False},
    "query expansion": {"expansion": True, "hubness": False},
    "hubness correction": {"expansion": False, "hubness": True},
    "both": {"expansion": True, "hubness": True},
}


def clustered(n: int, dim: int, *, seed: int, clusters: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        block = centres[rng.integers(0, clusters, m)] * 0.8
        block += rng.standard_normal((m, dim)).astype(np.float32) * 0.6 / np.sqrt(dim) * 8
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def synthetic_table(ids: np.ndarray, k: int) -> NeighbourTable:
    """A statistic of the right shape with random neighbour lists and similarities."""
    rng = np.random.default_rng(2)
    neighbours = ids[rng.integers(0, len(ids), (len(ids), k))]
    sims = -np.sort(-rng.uniform(0.5, 0.9, (len(ids), k)).astype(np.float32), axis=1)
    return NeighbourTable(ids.astype(np.int64), neighbours.astype(np.int64), sims)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    parser.add_argument(
        "--statistic",
        choices=("exact", "synthetic"),
        default="exact",
        help="synthetic: skip the exact build for all vectors (minutes on a few cores) and give "
        "the index a statistic with random neighbour lists: a query's cost does not depend on "
        "which neighbours are listed; the incremental update then runs on that table",
    )
    parser.add_argument(
        "--no-graph", action="store_true", help="exact search only (no HNSW graph built)"
    )
    args = parser.parse_args()
    index = args.workdir / "rerank.idx"
    shutil.rmtree(index, ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)

    with SearchEngine.create(index, embedder=EMBEDDER) as engine:
        dim = engine.manifest.dim
        vectors = clustered(args.vectors + 200, dim, seed=0)
        ten_k = min(10_000, args.vectors)
        build_10k = timed(lambda: build_neighbours(np.arange(ten_k), vectors[:ten_k], 10))
        for start in range(0, args.vectors, 20_000):
            stop = min(start + 20_000, args.vectors)
            engine.add_vectors([f"v/{i:07d}" for i in range(start, stop)], vectors[start:stop])
        engine.vector_index()  # loaded once, as a warm writer has it
        if args.statistic == "synthetic":
            engine.collection.neighbours.save(synthetic_table(engine.vector_index().ids, 10))
        build_all = timed(lambda: engine.set_reranking(hubness=True))
        n = args.vectors
        paths = [f"v/{i:07d}" for i in range(n, n + 200)]
        add_with = timed(lambda: engine.add_vectors(paths[:100], vectors[n : n + 100]))
        engine.set_reranking(hubness=False)
        add_without = timed(lambda: engine.add_vectors(paths[100:], vectors[n + 100 :]))
        engine.set_reranking(hubness=True)  # the statistic of the final collection
        # What `lookalike index` does for an auto index this big.
        recall = None if args.no_graph else engine.sync_ann().recall_at_10
        count = len(engine)

    print(
        f"machine: {os.cpu_count()} cores; {count:,} vectors x {dim} (float32, clustered); "
        f"k=10; graph recall@10 {'(no graph)' if recall is None else f'{recall:.3f}'}"
    )
    print(
        f"neighbour statistic (k=10), built from scratch for {ten_k:,} vectors: {build_10k:.1f} s"
    )
    if args.statistic == "exact":
        built = f"{build_all:.1f} s"
        print(f"neighbour statistic built from scratch for {args.vectors:,} vectors: {built}")
    else:
        print(f"neighbour statistic for {args.vectors:,} vectors: synthetic (not built)")
    print(
        f"add_vectors of 100 images to {args.vectors:,}: {add_with:.2f} s with the statistic "
        f"kept, {add_without:.2f} s without"
    )
    rng = np.random.default_rng(1)
    picks = rng.choice(args.vectors, args.queries, replace=False)
    queries = vectors[picks] + rng.standard_normal((args.queries, dim)).astype(np.float32) * 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"{'search':<34}{'p50 ms':>9}{'p95 ms':>9}{'copy@1':>8}")
    for index_type in ("exact",) if args.no_graph else ("exact", "hnsw"):
        store = IndexStore.open(index, writable=True)
        store.set_index_type(index_type)  # the vectors do not change
        store.close()
        with SearchEngine.open(index) as engine:
            used = engine.search_index_type()
            times: dict[str, list[float]] = {way: [] for way in WAYS}
            hits = dict.fromkeys(WAYS, 0)
            for switches in WAYS.values():  # warm: vectors, graph, statistic loaded
                engine.search_vectors(queries[:1], k=10, **switches)
            for i, query in enumerate(queries):
                for way in list(WAYS)[i % 4 :] + list(WAYS)[: i % 4]:
                    started = time.perf_counter()
                    (found,) = engine.search_vectors(query[None, :], k=10, **WAYS[way])
                    times[way].append(time.perf_counter() - started)
                    hits[way] += found[0].path == f"v/{picks[i]:07d}"
        for way, values in times.items():
            ms = np.asarray(values) * 1000
            # A synthetic statistic's random r_x reorder copies: only its cost is meaningful.
            meaningful = args.statistic == "exact" or not WAYS[way]["hubness"]
            copies = f"{hits[way] / len(queries):>8.3f}" if meaningful else f"{'n/a':>8}"
            print(
                f"{way + ' [' + used + ']':<34}{np.percentile(ms, 50):>9.2f}"
                f"{np.percentile(ms, 95):>9.2f}{copies}"
            )


if __name__ == "__main__":
    main()
