"""What a region search (`lookalike search --box`) costs per query, side by side with a normal
search of the same large JPEGs, and why the region is decoded the way it is.

Queries are 8-12 megapixel JPEGs made from scikit-image's colour photos (seeded random crops,
upscaled). Each is searched whole, then by three boxes: its centre half (a quarter of the
area), its centre quarter (1/16 of the area), and the whole picture given as a box. Decoding
is also timed alone, three ways: the whole image as a normal search decodes it (JPEG draft at
the network's input size), the region with the draft chosen so that the region keeps the
network's input size (what lookalike does), and the region cut from a full-scale decode.

Usage: python benchmarks/region_cost.py [--photos 40] [--queries 10] [--rounds 3]
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
from _photos import make_photo_folder
from PIL import Image

from lookalike import Box, SearchEngine
from lookalike.evaluation.copies import skimage_originals
from lookalike.imaging import open_image


def large_jpegs(folder: Path, count: int, *, seed: int = 16) -> list[Path]:
    """``count`` JPEGs of 8 to 12 megapixels (quality 90): seeded crops of scikit-image's
    colour photos, upscaled with bicubic resampling."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    originals = [image for _, image in skimage_originals()]
    paths = []
    for i in range(count):
        base = originals[i % len(originals)]
        fraction = rng.uniform(0.7, 1.0)
        w, h = int(base.width * fraction), int(base.height * fraction)
        x, y = int(rng.integers(0, base.width - w + 1)), int(rng.integers(0, base.height - h + 1))
        scale = (rng.uniform(8.0, 12.0) * 1e6 / (w * h)) ** 0.5
        path = folder / f"large{i:03d}.jpg"
        if not path.exists():
            crop = base.crop((x, y, x + w, y + h))
            crop.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC).save(
                path, quality=90
            )
        paths.append(path)
    return paths


def centre(path: Path, fraction: float) -> Box:
    """The centre box of ``fraction`` of the image's width and height."""
    with Image.open(path) as image:
        w, h = image.size
    return Box(
        w * (1 - fraction) / 2,
        h * (1 - fraction) / 2,
        w * (1 + fraction) / 2,
        h * (1 + fraction) / 2,
    )


def p50_ms(run: Callable[[Path], object], queries: list[Path], rounds: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``run`` over every query, ``rounds`` times each."""
    wall, cpu = [], []
    for _ in range(rounds):
        for query in queries:
            started, started_cpu = time.perf_counter(), time.process_time()
            run(query)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    return float(np.median(wall)) * 1000.0, float(np.median(cpu)) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--embedder", default="efficientnet-lite0")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    photos = make_photo_folder(args.workdir / "photos", args.photos)
    queries = large_jpegs(args.workdir / "region-queries", args.queries)
    index = args.workdir / "region.idx"
    shutil.rmtree(index, ignore_errors=True)
    with SearchEngine.create(index, embedder=args.embedder) as engine:
        engine.index_folder(photos[0].parent)
    megapixels = [Image.open(q).width * Image.open(q).height / 1e6 for q in queries]
    print(
        f"machine: {os.cpu_count()} cores; index of {args.photos} photos; {len(queries)} "
        f"JPEG queries of {min(megapixels):.1f}-{max(megapixels):.1f} MP, {args.rounds} rounds; "
        f"k=10; embedder {args.embedder}"
    )
    with SearchEngine.open(index) as engine:
        spec = engine.embedder.input_spec
        engine.search([queries[0]], k=10)  # warm: model and vectors loaded
        boxes = {
            fraction: {q: centre(q, fraction) for q in queries} for fraction in (0.5, 0.25, 1.0)
        }
        print(f"\n{'search (decode + embed + search)':<44}{'p50 ms':>9}{'p50 CPU ms':>12}")
        searches: list[tuple[str, Callable[[Path], object]]] = [
            ("normal search (whole image)", lambda q: engine.search([q], k=10)),
            (
                "--box centre half (1/4 of the area)",
                lambda q: engine.search([q], k=10, box=boxes[0.5][q]),
            ),
            (
                "--box centre quarter (1/16 of the area)",
                lambda q: engine.search([q], k=10, box=boxes[0.25][q]),
            ),
            ("--box the whole image", lambda q: engine.search([q], k=10, box=boxes[1.0][q])),
        ]
        for label, run in searches:
            wall, cpu = p50_ms(run, queries, args.rounds)
            print(f"{label:<44}{wall:>9.1f}{cpu:>12.1f}")
        side = spec.decode_side
        print(f"\n{'decoding alone':<44}{'p50 ms':>9}{'p50 CPU ms':>12}")
        decodes: list[tuple[str, Callable[[Path], object]]] = [
            ("whole image, draft for the network", lambda q: open_image(q, min_side=side)),
            (
                "centre half, draft for the region",
                lambda q: open_image(q, min_side=side, box=boxes[0.5][q]),
            ),
            (
                "centre half, cut from a full-scale decode",
                lambda q: open_image(q, box=boxes[0.5][q]),
            ),
            (
                "centre quarter, draft for the region",
                lambda q: open_image(q, min_side=side, box=boxes[0.25][q]),
            ),
            (
                "centre quarter, cut from a full-scale decode",
                lambda q: open_image(q, box=boxes[0.25][q]),
            ),
        ]
        for label, run in decodes:
            wall, cpu = p50_ms(run, queries, args.rounds)
            print(f"{label:<44}{wall:>9.1f}{cpu:>12.1f}")


if __name__ == "__main__":
    main()
