"""What one explanation costs beside a plain search: for each photo of a gallery used as an
uploaded query (its bytes), the warm latency of a plain search (k=12), of explaining one result
with nothing cached (decode and run the network on both images), of explaining the next result
with the query's feature map cached (what a page asking for its 12 results pays per result
after the first), and the same with overlays. Medians (p50) and p90 over the gallery, measured
side by side in one run.

The gallery: real-size JPEGs (1-4 megapixels) made from scikit-image's photos
(benchmarks/_photos.py), indexed with --quality QUALITY (default balanced).

Usage: python benchmarks/explain_cost.py [--photos 40] [--quality balanced] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _photos import make_photo_folder

from lookalike import SearchEngine
from lookalike.explain import Explainer


def since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--quality", default="balanced")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()
    photos = make_photo_folder(args.workdir / "explain-photos", args.photos)
    index = args.workdir / f"explain-{args.quality}.idx"
    shutil.rmtree(index, ignore_errors=True)
    with SearchEngine.create(index, quality=args.quality) as engine:
        engine.index_folder(photos[0].parent)
        times: dict[str, list[float]] = {
            "plain search (k=12)": [],
            "explain, nothing cached": [],
            "explain, query cached": [],
            "explain, query cached, overlays": [],
        }
        engine.search([photos[0].read_bytes()], k=12)  # warm: model, vectors
        for path in photos:
            data = path.read_bytes()
            started = time.perf_counter()
            (result,) = engine.search([data], k=12)
            times["plain search (k=12)"].append(since(started))
            first, second, third = (m.id for m in result.matches[:3])
            explainer = Explainer(engine.model, engine.collection)  # an empty cache
            for name, result_id, overlays in (
                ("explain, nothing cached", first, False),
                ("explain, query cached", second, False),
                ("explain, query cached, overlays", third, True),
            ):
                started = time.perf_counter()
                explainer.explain(data, result_id, overlays=overlays)
                times[name].append(since(started))
    print(
        f"machine: {os.cpu_count()} cores (shared with other work while measured); "
        f"{len(photos)} photos of 1-4 megapixels, --quality {args.quality}; "
        "each photo's bytes as the query"
    )
    print(f"{'':34s} {'p50 ms':>8s} {'p90 ms':>8s}")
    for name, values in times.items():
        p50, p90 = np.percentile(values, [50, 90])
        print(f"{name:34s} {p50:8.1f} {p90:8.1f}")


if __name__ == "__main__":
    main()
