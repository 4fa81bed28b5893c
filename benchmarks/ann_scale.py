"""Approximate search at a million images, beside exact search, in one run.

1,000,000 vectors from a Gaussian mixture fitted to lite0's vectors of 10,000 real images
(Fashion-MNIST; 100 k-means clusters, each a Gaussian with its members' covariance), and 1,000
held-out queries from the same mixture. ``--stats`` first checks that the synthetic vectors
are as hard to search as the real ones (local intrinsic dimensionality, relative contrast),
beside a single fitted Gaussian (`--distribution gaussian` runs the whole benchmark on that).

The index is built the way `lookalike index` builds one (vectors committed, then the HNSW graph
synced with the defaults: PCA to 128 learned on the collection, M=16, efConstruction=100,
candidates re-scored with the full vectors), once: it is kept in ``--workdir`` with the queries
and their exact top 10 (over the full 1280-d vectors, the real ground truth), and later runs
time searches on it without rebuilding. Searches are timed in a child process per library
version: ``--before SRC`` (a ``src`` folder of another version, e.g. from ``git archive``)
is timed alternately with this one, ``--rounds`` times each, on the same built index.

Usage: python benchmarks/ann_scale.py [--vectors 1000000] [--workdir DIR] [--before SRC]
       [--rounds 2] [--grid] [--stats] [--distribution mixture|gaussian]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _ann_build import built_index
from _vectors import gaussian_like, mixture_like, neighbour_stats, real_embeddings

HERE = Path(__file__).resolve().parent


def timed_in_child(src: Path, folder: Path, tag: Path, grid: bool) -> dict[str, list[float]]:
    """label -> [p50 ms, p99 ms, recall@10, peak RSS GB] from _ann_latency.py run on ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, str(HERE / "_ann_latency.py"), str(folder)]
    command += [f"{tag}.queries.npy", f"{tag}.truth.npy"] + (["--grid"] if grid else [])
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--distribution", choices=("mixture", "gaussian"), default="mixture")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    parser.add_argument("--before", type=Path, help="a src folder of the version to compare")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--grid", action="store_true", help="also other ef / re-score depths")
    parser.add_argument("--stats", action="store_true", help="LID and contrast of the vectors")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    if args.stats:
        real = real_embeddings(args.workdir)
        print(f"{'distribution (10,000 vectors each)':<40}{'LID':>6}{'contrast':>10}")
        lid, contrast = neighbour_stats(real)
        print(f"{'real lite0 vectors (Fashion-MNIST)':<40}{lid:>6.1f}{contrast:>10.2f}")
        for name, make in (("mixture", mixture_like), ("gaussian", gaussian_like)):
            lid, contrast = neighbour_stats(make(real, len(real), seed=1))
            print(f"{name + ' fitted to them':<40}{lid:>6.1f}{contrast:>10.2f}", flush=True)

    folder, queries, _, built = built_index(
        args.workdir, args.vectors, queries=args.queries, distribution=args.distribution
    )
    tag = folder.with_suffix("")
    print(
        f"{args.vectors:,} vectors x {queries.shape[1]} ({args.distribution}), "
        f"{len(queries)} held-out queries, k=10; build (when first made): commit "
        f"{built['commit_s']:.0f} s, graph {built['graph_build_s']:.0f} s "
        f"({args.vectors / built['graph_build_s']:,.0f} vectors/s), recall@10 recorded "
        f"{built['recorded_recall_at_10']:.3f}",
        flush=True,
    )
    versions = {"this": HERE.parent / "src"}
    if args.before is not None:
        versions = {"before": args.before, **versions}
    runs: dict[str, list[dict[str, list[float]]]] = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, src in versions.items():  # alternated: both see the same load
            runs[name].append(timed_in_child(src, folder, tag, args.grid))
    memory = "process memory MB (RssAnon, RssFile, AnonHugePages)"
    labels = [label for label in runs["this"][0] if label != memory]
    header = "".join(f"{name + ' p50':>12}{'p99':>8}{'recall':>8}" for name in versions)
    print(f"{'method':<44}{header}")
    for label in labels:
        cells = ""
        for name in versions:
            rows = [run[label] for run in runs[name] if label in run]
            if not rows:
                cells += f"{'-':>12}{'-':>8}{'-':>8}"
                continue
            p50 = float(np.median([r[0] for r in rows]))
            p99 = float(np.median([r[1] for r in rows]))
            cells += f"{p50:>12.2f}{p99:>8.2f}{rows[0][2]:>8.3f}"
        print(f"{label:<44}{cells}", flush=True)
    for name in versions:
        print(f"{name}: {memory}: {[run.get(memory) for run in runs[name]]}")
    ann = folder / "ann"
    graph_bytes = sum(p.stat().st_size for p in ann.iterdir() if p.name != "ann.json")
    per = graph_bytes / args.vectors
    dim = queries.shape[1]
    print(f"graph + PCA: {per:.0f} B/vector (files in ann/); per storage choice, B/vector:")
    print(f"{'storage':<22}{'disk':>8}{'graph search RAM':>18}{'exact search RAM':>18}")
    for name, stored, kept in (
        ("float32", 4, 4),
        ("float16", 2, 2),
        ("int8", 1, 1),
        ("int8 --keep-float32", 4, 1),
    ):
        disk = dim * stored + per
        # The graph re-scores from the segments (memory-mapped: page cache, shared).
        print(f"{name:<22}{disk:>8.0f}{disk:>18.0f}{dim * kept:>18.0f}")


if __name__ == "__main__":
    main()
