"""Indexing throughput on real-size JPEG photos, three ways, measured in one run:

1. end to end: `SearchEngine.index_folder` (scan, hash, parallel decode, embed, commit), with
   EfficientNet-Lite0 at each `--quality`: balanced (the default: whole image 256 px, GeM,
   int8), fast, best, and classic (the 224-px centre crop in float32, the previous default);
2. model only: the ONNX Runtime embedder on prepared 224-px crops in batches of 32 (classic
   recipe), both precisions;
3. naive baseline: eager PyTorch, one image at a time, full-size decode, the way the blog
   posts this field is taught from do it.

Usage: python benchmarks/indexing_speed.py [--images 480] [--naive-images 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _photos import make_photo_folder
from PIL import Image

from lookalike import IndexOptions, SearchEngine
from lookalike.embedders.pretrained import VARIANTS, EfficientNetLite, weights_path
from lookalike.imaging import load_prepared


def end_to_end(folder: Path, workdir: Path, quality: str) -> tuple[float, int]:
    index = workdir / f"bench-{quality}.idx"
    shutil.rmtree(index, ignore_errors=True)
    with SearchEngine.create(index, embedder="lite0", quality=quality) as engine:
        engine.embedder  # noqa: B018  (model load and export are not indexing work)
        report = engine.index_folder(folder, options=IndexOptions())
    assert not report.skipped, report.skipped
    return report.embedded / report.seconds, report.embedded


def model_only(paths: list[Path], variant: str, repeats: int = 10) -> float:
    model = EfficientNetLite(variant)
    batch = np.stack([load_prepared(p, model.input_spec) for p in paths[:32]])
    model.embed(batch)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.embed(batch)
        rates.append(len(batch) / (time.perf_counter() - start))
    return statistics.median(rates)


def naive_baseline(paths: list[Path]) -> float:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(os.cpu_count() or 1)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(weights_path(VARIANTS["efficientnet-lite0"]), weights_only=True))
    net.eval()

    def embed_one(path: Path) -> np.ndarray:
        image = Image.open(path).convert("RGB")  # full-size decode
        w, h = image.size
        scale = 256 / min(w, h)
        image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
        left, top = (image.width - 224) // 2, (image.height - 224) // 2
        image = image.crop((left, top, left + 224, top + 224))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
        with torch.no_grad():
            features = net._avg_pooling(net.extract_features(x.permute(2, 0, 1)[None]))
        vector = features.flatten().numpy()
        return vector / np.linalg.norm(vector)

    embed_one(paths[0])
    start = time.perf_counter()
    for path in paths:
        embed_one(path)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--naive-images", type=int, default=60)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench"
    )
    args = parser.parse_args()

    folder = args.workdir / "photos"
    paths = make_photo_folder(folder, args.images)
    sizes = [Image.open(p).size for p in paths]
    megapixels = [w * h / 1e6 for w, h in sizes]
    total_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(
        f"machine: {os.cpu_count()} cores; photos: {len(paths)} JPEGs, "
        f"{min(megapixels):.1f}-{max(megapixels):.1f} MP (mean {statistics.mean(megapixels):.1f}),"
        f" {total_mb:.0f} MB"
    )

    model_rate = model_only(paths, "efficientnet-lite0")
    int8_model_rate = model_only(paths, "efficientnet-lite0-int8")
    naive_rate = naive_baseline(paths[: args.naive_images])
    e2e = {q: end_to_end(folder, args.workdir, q) for q in ("balanced", "fast", "best", "classic")}
    embedded = e2e["balanced"][1]

    print(f"{'method':<52}{'images/s':>10}{'vs naive':>10}")
    for name, rate in (
        *((f"end to end, --quality {q} ({embedded} photos)", r) for q, (r, _) in e2e.items()),
        ("model only, lite0 float32 (batch 32)", model_rate),
        ("model only, lite0-int8 (batch 32)", int8_model_rate),
        (f"naive baseline (eager PyTorch, 1 at a time, {args.naive_images} photos)", naive_rate),
    ):
        print(f"{name:<52}{rate:>10.1f}{rate / naive_rate:>9.1f}x")


if __name__ == "__main__":
    main()
