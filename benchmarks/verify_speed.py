"""How long `lookalike verify` takes on a 100,000-image index, and what the integrity checks
cost: checksumming a segment, the finiteness check, and the first search of a fresh process
(which checks each segment's checksum once before trusting it; run 2 has the files in the
page cache).

The vectors are random unit vectors added through ``SearchEngine.add_vectors`` in batches of
10,000 (ten segments), into an index made with the default embedder (1280-d); one
``index``-style compaction then merges them, as a real collection ends up.

Usage: python benchmarks/verify_speed.py [--images 100000] [--embedder lite0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from lookalike import SearchEngine
from lookalike.checksums import file_checksum
from lookalike.store import IndexStore
from lookalike.verification import verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--embedder", default="lite0")
    parser.add_argument("--keep", type=Path, help="build the index here and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="verify-speed-"))
    index = workdir / "random.idx"
    shutil.rmtree(index, ignore_errors=True)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with SearchEngine.create(index, embedder=args.embedder, index_type="exact") as engine:
        dim = engine.manifest.dim
        for start in range(0, args.images, 10_000):
            n = min(10_000, args.images - start)
            block = rng.standard_normal((n, dim)).astype(np.float32)
            engine.add_vectors([f"img{start + i:07d}.jpg" for i in range(n)], block)
    print(f"built {args.images:,} x {dim} in {time.perf_counter() - started:.1f} s")

    segments = sorted((index / "segments").glob("*.npy"))
    size = sum(p.stat().st_size for p in segments)
    t = time.perf_counter()
    for path in segments:
        file_checksum(path)
    crc = time.perf_counter() - t
    print(
        f"crc32 of {len(segments)} segments ({size / 1e6:.0f} MB): {crc:.2f} s "
        f"({size / crc / 1e9:.1f} GB/s)"
    )
    store = IndexStore.open(index)
    try:
        _, vectors = store.load_vectors()  # includes the one checksum check of each segment
        t = time.perf_counter()
        finite = bool(np.isfinite(vectors).all())
        fin = time.perf_counter() - t
        t = time.perf_counter()
        np.einsum("ij,ij->i", vectors, vectors)
        norms = time.perf_counter() - t
        t = time.perf_counter()
        zlib.crc32(memoryview(vectors).cast("B"))
        mem = time.perf_counter() - t
    finally:
        store.close()
    print(
        f"on the {vectors.shape} array in memory: crc32 {mem:.2f} s, finiteness {fin:.2f} s "
        f"(all finite: {finite}), squared norms {norms:.2f} s"
    )

    for run in range(2):
        t = time.perf_counter()
        with SearchEngine.open(index) as engine:
            engine.search_vectors(vectors[:1], k=10)
        print(
            f"new process's open + first exact search, run {run + 1}: "
            f"{time.perf_counter() - t:.2f} s"
        )

    for _ in range(2):
        report = verify(index)
        assert report.clean, report.problems
        print(
            f"verify ({report.images:,} images, {report.segments} segments): {report.seconds:.2f} s"
        )
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
