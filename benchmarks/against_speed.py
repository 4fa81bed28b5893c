"""`duplicates --against`: time to match every image of a new collection (a card) with its
best image of an old one and tier the pair, on random unit vectors of the default embedder's
dimension (the cost does not depend on what the vectors hold; 1 in 10 card images is a noisy
copy of an old one, so the tiering runs on real pairs too).

Usage: python benchmarks/against_speed.py [--old 20000] [--new 2000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lookalike.catalog_records import ImageRecord
from lookalike.duplicates.against import Side, find_against
from lookalike.duplicates.report import DuplicateOptions


def side(vectors: np.ndarray, first_id: int, tag: str) -> Side:
    ids = np.arange(first_id, first_id + len(vectors), dtype=np.int64)
    records = {
        int(i): ImageRecord(int(i), f"/{tag}/{i}.jpg", 1, 1, f"{tag}{i}", None, 0, 0) for i in ids
    }
    return Side(ids, vectors, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=1280)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    old = rng.standard_normal((args.old, args.dim)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    new = rng.standard_normal((args.new, args.dim)).astype(np.float32)
    copies = rng.choice(args.old, size=args.new // 10, replace=False)
    new[: len(copies)] = old[copies] + 0.02 * new[: len(copies)]
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    started = time.perf_counter()
    report = find_against(side(new, 1, "new"), side(old, 1, "old"), DuplicateOptions())
    seconds = time.perf_counter() - started
    print(
        f"machine: {os.cpu_count()} cores (shared, loaded); {args.new:,} new x {args.old:,} old "
        f"vectors of {args.dim} dims"
    )
    print(
        f"--against: {seconds:.2f} s ({seconds / args.new * 1000:.2f} ms per new image); "
        f"{len(report.found)} found (of {len(copies)} planted), {len(report.new)} new"
    )


if __name__ == "__main__":
    main()
