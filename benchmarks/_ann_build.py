"""A benchmark collection built once and reused: vectors from the mixture fitted to real lite0
vectors committed to an index directory, the HNSW graph synced with the defaults, and held-out
queries with their exact top 10 (over the full vectors), all kept in a work folder so that
later runs time searches on the same built index without rebuilding it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _vectors import Mixture, gaussian_like, mixture_like, real_embeddings

from lookalike import SearchEngine

#: Rows committed at a time.
BLOCK = 100_000
#: Above this many vectors the mixture is made a block at a time (other draws of the same
#: mixture); up to it, in one array as the published figures up to 2M were.
ONE_ARRAY_LIMIT = 2_000_000


def _slices(data: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """The first ``rows`` rows of ``data``, a block at a time."""
    for first in range(0, rows, BLOCK):
        yield data[first : min(first + BLOCK, rows)]


def _filled(mixture: Mixture, rows: int, number: int) -> np.ndarray:
    """Block ``number`` of a streamed collection, from its own seeded stream."""
    out = np.empty((rows, len(mixture.means[0])), dtype=np.float32)
    mixture.fill(out, np.random.default_rng([0, number]))
    return out


def built_index(
    workdir: Path,
    vectors: int,
    *,
    queries: int = 1000,
    distribution: str = "mixture",
    vector_dtype: str = "float32",
    keep_float32: bool = False,
) -> tuple[Path, np.ndarray, np.ndarray, dict[str, float]]:
    """(index folder, queries, exact top-10 ids, build figures), built on the first call."""
    tag = f"{distribution}-{vectors}-{vector_dtype}{'-keep' if keep_float32 else ''}"
    folder = workdir / f"ann-{tag}.idx"
    done = workdir / f"ann-{tag}.json"
    if done.exists():
        figures = json.loads(done.read_text())
        return (
            folder,
            np.load(workdir / f"ann-{tag}.queries.npy"),
            np.load(workdir / f"ann-{tag}.truth.npy"),
            figures,
        )
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    real = real_embeddings(workdir)
    if distribution == "mixture" and vectors > ONE_ARRAY_LIMIT:
        # Made and committed a block at a time: never all the vectors in memory at once.
        mixture = Mixture(real, seed=0)
        held_out = np.empty((queries, real.shape[1]), dtype=np.float32)
        mixture.fill(held_out, np.random.default_rng([0, 10**9]))
        blocks: Iterator[np.ndarray] = (
            _filled(mixture, min(BLOCK, vectors - first), number)
            for number, first in enumerate(range(0, vectors, BLOCK))
        )
    else:  # as the published 100k-2M figures were made: one array, the last rows held out
        make = mixture_like if distribution == "mixture" else gaussian_like
        data = make(real, vectors + queries, seed=0)
        held_out = data[vectors:].copy()
        blocks = _slices(data, vectors)
        del data  # the generator keeps it until the last block is taken
    start = time.perf_counter()
    engine = SearchEngine.create(
        folder, index_type="hnsw", vector_dtype=vector_dtype, keep_float32=keep_float32
    )
    # Exact truth over the float32 vectors, a committed block at a time.
    truth_scores = np.full((queries, 10), -np.inf, dtype=np.float32)
    truth = np.full((queries, 10), -1, dtype=np.int64)
    first = 0
    truth_s = 0.0
    for block in blocks:
        ids = np.asarray(
            engine.add_vectors([f"v{i}" for i in range(first, first + len(block))], block),
            dtype=np.int64,
        )
        first += len(block)
        truth_started = time.perf_counter()
        sims = held_out @ block.T
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        both_s = np.concatenate([truth_scores, np.take_along_axis(sims, top, 1)], axis=1)
        both_i = np.concatenate([truth, ids[top]], axis=1)
        keep = np.argsort(-both_s, axis=1)[:, :10]
        truth_scores = np.take_along_axis(both_s, keep, 1)
        truth = np.take_along_axis(both_i, keep, 1)
        truth_s += time.perf_counter() - truth_started
    del block, blocks  # the last block may be a view of the one array: free it all
    commit_s = time.perf_counter() - start - truth_s
    # Saved before the graph is built: a graph build that dies (memory, time) keeps them.
    np.save(workdir / f"ann-{tag}.queries.npy", held_out)
    np.save(workdir / f"ann-{tag}.truth.npy", truth)
    start = time.perf_counter()
    info = engine.sync_ann()
    build_s = time.perf_counter() - start
    engine.close()
    figures = {
        "commit_s": commit_s,
        "graph_build_s": build_s,
        "recorded_recall_at_10": info.recall_at_10,
    }
    done.write_text(json.dumps(figures))
    return folder, held_out, truth, figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="build a benchmark index once")
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--vector-dtype", default="float32")
    parser.add_argument("--keep-float32", action="store_true")
    args = parser.parse_args()
    print(
        built_index(
            args.workdir,
            args.vectors,
            vector_dtype=args.vector_dtype,
            keep_float32=args.keep_float32,
        )[3]
    )
