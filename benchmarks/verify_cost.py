"""What copy mode (`lookalike search --verify`) costs per query, side by side with a plain
search: top 5, 10 and 20 candidates verified, with and without the mirror-image match, with
candidates' features computed on demand (cold cache: every candidate decoded and described)
and from the in-memory cache (warm: about what features stored at index time would cost).

The gallery is real-size photos (1 to 4 MP JPEGs); each query is an edited copy of one of
them (every other one mirrored; all cropped to 70 % and re-encoded), so verification has a
true copy to find. The gallery's photos are themselves crops of eight pictures, so several
photos overlap a query's: the last column counts queries whose first match is one that
verification confirmed as a copy (inliers >= its threshold), not which photo that is.

Usage: python benchmarks/verify_cost.py [--photos 60] [--queries 12] [--embedder NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _photos import make_photo_folder
from PIL import Image, ImageOps

from lookalike import SearchEngine
from lookalike.query.geometry import GeometricVerifier
from lookalike.query.pipeline import QueryPipeline
from lookalike.search_options import SearchOptions


def edited_copies(photos: list[Path], folder: Path, count: int) -> list[Path]:
    """Copies of the first photos: every other one mirrored, all cropped to 70 %, re-encoded."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, original in enumerate(photos[:count]):
        with Image.open(original) as image:
            w, h = image.size
            crop = image.crop((int(0.15 * w), int(0.15 * h), int(0.85 * w), int(0.85 * h)))
            edited = ImageOps.mirror(crop) if i % 2 else crop
            target = folder / f"copy{i:03d}.jpg"
            edited.save(target, quality=70)
        pairs.append(target)
    return pairs


def timed(
    pipeline: QueryPipeline, queries: list[Path], top: int, *, cold: bool
) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds per single-image query (``top`` 0: verification off; ``cold``:
    the feature cache emptied before each query), and how many first matches were verified
    copies. CPU time is what a query costs on a machine that other work does not share."""
    seconds, cpu, first = [], [], 0
    search = SearchOptions(k=10, verify=top > 0, verify_top=max(top, 1))
    for query in queries:
        if cold:
            pipeline.verifier.forget()
        started, started_cpu = time.perf_counter(), time.process_time()
        (result,) = pipeline.search([str(query)], search)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        first += pipeline.verifier.is_copy(result.matches[0].inliers)
    return seconds, cpu, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--embedder", default="efficientnet-lite0")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    photos = make_photo_folder(args.workdir / "photos", args.photos)
    queries = edited_copies(photos, args.workdir / "verify-copies", args.queries)
    index = args.workdir / "verify.idx"
    shutil.rmtree(index, ignore_errors=True)
    with SearchEngine.create(index, embedder=args.embedder) as engine:
        engine.index_folder(args.workdir / "photos")
    print(
        f"machine: {os.cpu_count()} cores; {args.photos} photos of 1-4 MP; {len(queries)} "
        f"single-image queries (edited copies, half mirrored), k=10; embedder {args.embedder}"
    )
    print(f"{'search':<36}{'p50 ms':>9}{'mean ms':>9}{'p50 CPU ms':>11}{'#1 verified':>13}")
    with SearchEngine.open(index) as engine:
        engine.search([str(queries[0])], k=10)  # warm: model and vectors loaded
        rows: list[tuple[str, QueryPipeline, int]] = [("verification off", engine.pipeline, 0)]
        for mirror in (False, True):
            for top in (5, 10, 20):
                pipeline = replace(engine.pipeline, verifier=GeometricVerifier(mirror=mirror))
                rows.append((f"--verify top {top}{' + mirror' if mirror else ''}", pipeline, top))
        for label, pipeline, top in rows:
            for cold in (True, False) if top else (False,):
                if not cold:
                    timed(pipeline, queries, top, cold=False)  # fill the cache
                values, cpu, first = timed(pipeline, queries, top, cold=cold)
                shown = f"{label} ({'cold' if cold else 'warm'})" if top else label
                ms, cpu_ms = np.asarray(values) * 1000.0, np.asarray(cpu) * 1000.0
                print(
                    f"{shown:<36}{np.percentile(ms, 50):>9.1f}{ms.mean():>9.1f}"
                    f"{np.percentile(cpu_ms, 50):>11.1f}{first:>8}/{len(queries)}"
                )


if __name__ == "__main__":
    main()
