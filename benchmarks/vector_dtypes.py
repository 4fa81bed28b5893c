"""Compact vectors: float32 vs float16 vs int8, side by side in one run.

For each storage dtype an index is built the way `lookalike index --vector-dtype` builds one
(vectors committed to an index directory, the HNSW graph synced with the defaults), from the
ANN benchmark's realistic mixture (benchmarks/_vectors.py: a Gaussian mixture fitted to lite0's
vectors of Fashion-MNIST's 10,000 test images), with held-out queries from the same mixture.
Reported per dtype: bytes per vector on disk (segments) and resident (the exact index's array),
p50 latency of exact and graph search for one query, recall@10 of both against float32 exact
search. A fourth row builds int8 as an indexing run does, its ranges learned from the first
512-image commit, to measure clipping.

Quality: Fashion-MNIST mAP of the real lite0 vectors (a seeded subset of the 10,000 test images,
each a query against the others, with the metric `lookalike evaluate` uses), stored in each
dtype and read back as every reader gets them.

Last, the two ways NumPy can score int8 codes (decode each block, or fold the scale into the
query) and the block size, timed side by side with one BLAS thread (as exact search scores a
single query).

Usage: python benchmarks/vector_dtypes.py [--vectors 100000] [--queries 200] [--map-images 3000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _vectors import mixture_like, real_embeddings
from threadpoolctl import ThreadpoolController

from lookalike import SearchEngine
from lookalike.evaluation.metrics import query_scores
from lookalike.indexes.exact import ExactIndex
from lookalike.layout import IndexLayout
from lookalike.vector_codec import VectorCodec, learn_ranges

FIRST_COMMIT = 512  # `lookalike index`'s default --commit-every
#: (label, vector dtype, vectors in the first commit (0: 100,000), keep float32)
CONFIGS = (
    ("float32", "float32", 0, False),
    ("float16", "float16", 0, False),
    ("int8", "int8", 0, False),
    (f"int8, ranges from first {FIRST_COMMIT}", "int8", FIRST_COMMIT, False),
    ("int8 --keep-float32", "int8", FIRST_COMMIT, True),
)


def p50_ms(search, queries: np.ndarray) -> tuple[float, np.ndarray]:
    timings, found = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(search(q[None]))
        timings.append(time.perf_counter() - start)
    return float(np.percentile(np.asarray(timings) * 1000, 50)), np.asarray(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def build(
    folder: Path, dtype: str, data: np.ndarray, first: int, *, keep: bool = False
) -> SearchEngine:
    shutil.rmtree(folder, ignore_errors=True)
    engine = SearchEngine.create(folder, index_type="hnsw", vector_dtype=dtype, keep_float32=keep)
    starts = [0, *range(first, len(data), 100_000)] if first else range(0, len(data), 100_000)
    bounds = [*starts, len(data)]
    for start, stop in itertools.pairwise(bounds):
        engine.add_vectors([f"v{i}" for i in range(start, stop)], data[start:stop])
    return engine


def clipped_share(folder: Path, data: np.ndarray) -> float:
    """Share of the stored values that fell outside their dimension's int8 range."""
    codec = VectorCodec.load("int8", IndexLayout(folder).quantiser, data.shape[1])
    assert codec.ranges is not None
    offset, scale = codec.ranges
    return float(np.mean(np.abs((data - offset) / scale) > 127.5))


def fashion_map(real: np.ndarray, labels: np.ndarray, workdir: Path, images: int) -> list[str]:
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(real), size=min(images, len(real)), replace=False))
    lines = []
    for dtype in ("float32", "float16", "int8"):
        folder = workdir / f"dtypes-map-{dtype}.idx"
        engine = build(folder, dtype, real[rows], FIRST_COMMIT)
        _, vectors = engine.export_vectors()
        engine.close()
        scores = query_scores(vectors, labels[rows])
        lines.append(f"{dtype:<10}{np.nanmean(scores.average_precision):>8.4f}")
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def int8_scoring(data: np.ndarray, queries: np.ndarray) -> list[str]:
    codec = VectorCodec("int8", learn_ranges(data[:FIRST_COMMIT]))
    codes = codec.encode(data)
    assert codec.ranges is not None
    offset, scale = codec.ranges
    lines = []
    for block in (1024, 4096, 16_384):

        def folded(q: np.ndarray, block: int = block) -> np.ndarray:
            dots = codec.dots(q)
            return np.concatenate(
                [dots(codes[i : i + block]) for i in range(0, len(codes), block)], axis=1
            )

        def decoded(q: np.ndarray, block: int = block) -> np.ndarray:
            parts = []
            for i in range(0, len(codes), block):
                part = codes[i : i + block].astype(np.float32)
                part *= scale
                part += offset
                parts.append(q @ part.T)
            return np.concatenate(parts, axis=1)

        with ThreadpoolController().limit(limits=1, user_api="blas"):  # as ExactIndex does
            fold_ms, _ = p50_ms(folded, queries[:30])
            decode_ms, _ = p50_ms(decoded, queries[:30])
        lines.append(f"block {block:>6}: fold scale {fold_ms:8.1f} ms   decode {decode_ms:8.1f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--map-images", type=int, default=3000)
    parser.add_argument("--no-graph", action="store_true", help="exact search only")
    parser.add_argument("--only", action="append", help="rows whose label starts so (repeat)")
    parser.add_argument("--no-map", action="store_true", help="skip the mAP and int8 timing")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    real = real_embeddings(args.workdir)
    with SearchEngine.open(args.workdir / "serve-10k.idx") as engine:
        paths, _ = engine.export_vectors()
    labels = np.array([Path(p).parent.name for p in paths])
    data = mixture_like(real, args.vectors + args.queries, seed=0)
    queries = data[args.vectors :].copy()
    data = data[: args.vectors]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(
        f"{args.vectors:,} vectors x {data.shape[1]} (mixture fitted to {len(real):,} real lite0 "
        f"vectors), {args.queries} held-out queries, k=10; recall@10 against float32 exact"
    )
    print(
        f"{'storage':<30}{'disk B/vec':>11}{'RAM B/vec':>10}{'exact p50':>10}{'recall':>8}"
        f"{'graph p50':>10}{'recall':>8}{'clipped':>9}"
    )
    # float32 exact search over the same vectors (catalog ids count from 1, in commit order)
    truth = ExactIndex(np.arange(1, len(data) + 1), data).search(queries, 10)[1]
    for label, dtype, first, keep in CONFIGS:
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        folder = args.workdir / f"dtypes-{dtype}-{first}-{keep}.idx"
        engine = build(folder, dtype, data, first, keep=keep)
        exact = engine.vector_index()
        disk = sum(p.stat().st_size for p in (folder / "segments").iterdir()) / len(data)
        ram = exact.stored.nbytes / len(data)
        found = exact.search(queries, 10)[1]
        exact_ms, _ = p50_ms(lambda q, index=exact: index.search(q, 10)[1][0], queries[:50])
        graph_ms, graph_recall = float("nan"), float("nan")
        if not args.no_graph:
            engine.sync_ann()
            engine.close()
            engine = SearchEngine.open(folder)  # a reader, as `search` and `serve` open it
            graph = engine.ann_index()
            graph_ms, graph_found = p50_ms(lambda q, g=graph: g.search(q, 10)[1][0], queries)
            graph_recall = recall(graph_found, truth)
        clipped = clipped_share(folder, data) if dtype == "int8" else 0.0
        print(
            f"{label:<30}{disk:>11.0f}{ram:>10.0f}{exact_ms:>10.2f}{recall(found, truth):>8.3f}"
            f"{graph_ms:>10.2f}{graph_recall:>8.3f}{clipped:>9.5f}",
            flush=True,
        )
        engine.close()
        del exact
        shutil.rmtree(folder, ignore_errors=True)
    if args.no_map:
        return
    print(f"Fashion-MNIST mAP, {args.map_images:,} test images (seeded subset), each vs the rest:")
    for line in fashion_map(real, labels, args.workdir, args.map_images):
        print("  " + line, flush=True)
    print(f"int8 exact scoring, one query against {len(data):,} vectors, p50:")
    for line in int8_scoring(data, queries):
        print("  " + line, flush=True)


if __name__ == "__main__":
    main()
