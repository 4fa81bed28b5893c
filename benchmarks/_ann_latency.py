"""Search latency and recall@10 on a built benchmark index, in its own process, so that two
versions of the library can be timed on the same index side by side (ann_scale.py runs this
once per version, alternating). Prints one JSON object: label -> [p50 ms, p99 ms, recall@10],
and the process's memory.

Usage: python _ann_latency.py INDEX_DIR QUERIES.npy TRUTH.npy [--grid]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from lookalike import SearchEngine


def timed(search: Callable[[np.ndarray], list[int]], queries: np.ndarray, truth: np.ndarray):
    found, timings = [], []
    for q in queries:
        start = time.perf_counter()
        ids = search(q)
        timings.append(time.perf_counter() - start)
        found.append(ids)
    ms = np.asarray(timings) * 1000
    hits = [len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]
    return [float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.mean(hits))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("index", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument(
        "--grid", action="store_true", help="also graph settings beside the defaults"
    )
    args = parser.parse_args()
    queries, truth = np.load(args.queries), np.load(args.truth)
    engine = SearchEngine.open(args.index)
    graph = engine.ann_index()
    base = graph.params
    out: dict[str, list[float]] = {}
    for q in queries[:50]:  # warm up: the graph's and the rows' pages, the catalog
        engine.search_vectors(q, k=10)
    settings = (
        [(0, 128), (50, 64), (64, 64), (80, 80), (100, 100), (100, 128), (200, 200)]
        if args.grid
        else []
    )
    for rerank, ef in settings:
        graph.params = replace(base, rerank=rerank, ef_search=ef)
        out[f"graph ef{ef} rerank{rerank}"] = timed(
            lambda q: graph.search(q[None], 10)[1][0].tolist(), queries, truth
        )
    graph.params = base
    out[f"graph defaults (ef{base.ef_search} rerank{base.rerank})"] = timed(
        lambda q: graph.search(q[None], 10)[1][0].tolist(), queries, truth
    )
    out["search_vectors, stages off"] = timed(
        lambda q: [m.id for m in engine.search_vectors(q, k=10, expansion=False, hubness=False)[0]],
        queries,
        truth,
    )
    out["search_vectors, index defaults"] = timed(
        lambda q: [m.id for m in engine.search_vectors(q, k=10)[0]], queries, truth
    )
    out["process memory MB (RssAnon, RssFile, AnonHugePages)"] = _memory()
    engine.close()
    print(json.dumps(out))


def _memory() -> list[float]:
    """This process's own memory, its file pages (the mapped vectors) and its memory on huge
    pages (the graph), in MB, from /proc (Linux; empty elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
        rollup = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return []
    fields = dict(line.split(":", 1) for line in (status + rollup).splitlines() if ":" in line)
    return [
        round(int(fields[name].split()[0]) / 1024, 1)
        for name in ("RssAnon", "RssFile", "AnonHugePages")
    ]


if __name__ == "__main__":
    main()
